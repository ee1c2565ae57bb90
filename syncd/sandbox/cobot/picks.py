"""The seeded random choices generated objects are made of: ids, moments, people, addresses.

One RNG makes every choice, in the order the generator asks for them, so a seed reproduces
a whole space. Hostile text is one of those choices: `hostile_rate` decides how often free-text
fields get values from HOSTILE_VALUES when a builder does not say.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, time, timedelta

from syncd.sandbox.cobot.samples import (
    CITIES,
    COMPANIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    HOSTILE_VALUES,
    LAST_NAMES,
    STREETS,
)
from syncd.sandbox.cobot.shapes import JSON, email_safe


class RandomPicks:
    """Random values in Cobot's formats, drawn from one seeded RNG."""

    def __init__(self, seed: int, hostile_rate: float) -> None:
        self.rng = random.Random(seed)
        self.hostile_rate = hostile_rate

    def hex_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def day_between(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, max(0, (end - start).days)))

    def moment(self, day: date, first_hour: int, last_hour: int) -> datetime:
        """A moment on `day` between the two hours, on a five-minute mark."""
        clock = time(self.rng.randint(first_hour, last_hour), self.rng.randrange(0, 60, 5))
        return datetime.combine(day, clock)

    def is_hostile(self, hostile: bool | None) -> bool:
        """The builder's choice, or when it made none a roll against `hostile_rate`."""
        return self.rng.random() < self.hostile_rate if hostile is None else hostile

    def text(self, normal: str, hostile: bool) -> str:
        return self.rng.choice(HOSTILE_VALUES) if hostile else normal

    def person(self) -> tuple[str, str]:
        """A full name and a matching address at an example domain."""
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{email_safe(first)}.{email_safe(last)}{self.rng.randint(1, 999)}@"
        return f"{first} {last}", email + self.rng.choice(EMAIL_DOMAINS)

    def phone(self, hostile: bool) -> str | None:
        if hostile:
            return "+1 555"
        if self.rng.random() < 0.2:
            return None
        return f"+49 30 {self.rng.randint(1000000, 9999999)}"

    def address(self, name: str, hostile: bool) -> JSON:
        """A member's postal address; a company only for some, or a hostile one."""
        city, post_code, country = self.rng.choice(CITIES)
        street = f"{self.rng.randint(1, 120)} {self.rng.choice(STREETS)}"
        company = self.rng.choice((None, None, *COMPANIES))
        return {
            "company": self.text(company or "", hostile) if company or hostile else None,
            "name": name,
            "full_address": f"{street}\n{post_code} {city}\n{country}",
            "address": street,
            "post_code": post_code,
            "city": city,
            "state": None,
            "country": country,
        }
