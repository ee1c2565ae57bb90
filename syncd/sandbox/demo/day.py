"""A day in a small coworking space, played through the Cobot simulator for ``syncd demo``.

Every step is something a space manager knows from their own day (a sign-up, a confirmation,
a room booking, check-ins, the month's invoices, a payment, a cancellation, a member who
leaves) and is done the way Cobot does it: the simulator changes its data and sends the
webhooks Cobot would send, so the daemon under demonstration does its normal work.

An operator with a second location sees a quieter day there at the same time (each location is
its own Cobot space, with its own simulator): the days' steps are played in one clock order.
"""

from __future__ import annotations

import calendar
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from syncd.sandbox.cobot.samples import PLANS, RESOURCES, Plan
from syncd.sandbox.cobot.server import CobotSimulator
from syncd.sandbox.cobot.shapes import JSON, cobot_date, cobot_datetime

#: Real seconds per simulated minute at speed 1: the day (08:00 to 18:30) takes about 2 min.
SECONDS_PER_MINUTE = 0.2
SPEEDS = {"slow": 0.5, "normal": 1.0, "fast": 4.0, "high": 30.0}
DAY_START = time(8, 0)

Step = tuple[str, Callable[[datetime], str]]


@dataclass
class Feed:
    """What happened so far, for the terminal and the web view (written by one thread)."""

    clock: str = DAY_START.strftime("%H:%M")
    finished: bool = False
    entries: list[dict[str, str]] = field(default_factory=list)
    #: Called with each new entry (the demo prints it to the terminal).
    on_add: Callable[[str, str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, clock: str, text: str) -> None:
        with self._lock:
            self.clock = clock
            self.entries.append({"clock": clock, "text": text})
        if self.on_add is not None:
            self.on_add(clock, text)

    def finish(self) -> None:
        with self._lock:
            self.finished = True

    def snapshot(self) -> JSON:
        with self._lock:
            return {"clock": self.clock, "finished": self.finished, "feed": list(self.entries)}


def parse_speed(text: str) -> float:
    """A ``--speed`` value: a factor (2, 0.5) or one of the named paces."""
    if text in SPEEDS:
        return SPEEDS[text]
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 0 < factor <= 1000:
        names = ", ".join(SPEEDS)
        raise ValueError(f"expected a factor between 0 and 1000 or one of {names}, got {text!r}")
    return factor


def minutes_between(earlier: str, later: str) -> int:
    """Minutes from one ``HH:MM`` clock reading to a later one."""
    start, end = (datetime.strptime(t, "%H:%M") for t in (earlier, later))
    return int((end - start).total_seconds() // 60)


class Day:
    """The script of one location's day and the objects it made, by who they are in it.

    ``location`` names the place in what the feed says (only needed when there are several);
    a ``quiet`` day is a second location's: a few members who book, check in and pay.
    """

    def __init__(
        self,
        sim: CobotSimulator,
        today: date | None = None,
        *,
        location: str = "",
        quiet: bool = False,
    ) -> None:
        self.sim = sim
        self.today = today or datetime.now(UTC).date()
        self.location = location
        self.quiet = quiet
        self.members: dict[str, JSON] = {}
        self.check_ins: dict[str, str] = {}
        self.bookings: dict[str, JSON] = {}
        self.invoices: dict[str, JSON] = {}

    def script(self) -> list[Step]:
        """(clock, action) pairs in order; each action returns what a person would notice."""
        if self.quiet:
            return self._quiet_script()
        return [
            ("08:05", lambda at: self.sign_up("flex", PLANS[1])),
            ("08:15", lambda at: self.add_member("office", PLANS[3], at)),
            ("08:30", lambda at: self.confirm("flex", at)),
            ("08:40", lambda at: self.check_in("office", at)),
            ("09:00", lambda at: self.sign_up("desk", PLANS[2])),
            ("09:10", lambda at: self.confirm("desk", at)),
            ("09:15", lambda at: self.check_in("flex", at)),
            (
                "09:30",
                lambda at: self.book(
                    "office", 0, at.replace(hour=10, minute=0), 2, "Client workshop"
                ),
            ),
            ("09:45", lambda at: self.check_in("desk", at)),
            ("10:00", lambda at: self.booking_event("office", "booking_will_begin", "begins")),
            (
                "10:40",
                lambda at: self.book(
                    "desk",
                    3,
                    at.replace(hour=14, minute=0) + timedelta(days=1),
                    2,
                    "Podcast recording",
                ),
            ),
            ("11:20", lambda at: self.update_details("flex")),
            ("12:05", lambda at: self.booking_event("office", "booking_has_ended", "has ended")),
            ("12:30", lambda at: self.create_invoices(["flex", "office", "desk"])),
            ("13:00", lambda at: self.send_invoices(["flex", "office", "desk"])),
            ("13:30", lambda at: self.add_member("virtual", PLANS[4], at)),
            ("14:00", lambda at: self.pay_invoice("office")),
            ("14:20", lambda at: self.create_duplicate_invoice("flex")),
            ("14:35", lambda at: self.delete_duplicate_invoice()),
            ("15:00", lambda at: self.cancel_booking("desk")),
            ("15:30", lambda at: self.change_plan("flex", PLANS[0])),
            ("16:00", lambda at: self.check_out("desk", at)),
            ("16:30", lambda at: self.give_notice("office")),
            ("17:00", lambda at: self.leave("desk")),
            ("17:30", lambda at: self.check_out("flex", at)),
            ("17:45", lambda at: self.check_out("office", at)),
            (
                "18:30",
                lambda at: "The space closes. Every change of the day is a row in the sheet.",
            ),
        ]

    def _quiet_script(self) -> list[Step]:
        return [
            ("08:20", lambda at: self.add_member("desk", PLANS[2], at)),
            ("08:50", lambda at: self.add_member("flex", PLANS[1], at)),
            ("09:05", lambda at: self.check_in("desk", at)),
            (
                "10:20",
                lambda at: self.book("flex", 1, at.replace(hour=11, minute=0), 1, "Team sync"),
            ),
            ("11:45", lambda at: self.check_in("flex", at)),
            ("12:40", lambda at: self.create_invoices(["desk", "flex"])),
            ("13:10", lambda at: self.send_invoices(["desk", "flex"])),
            ("15:20", lambda at: self.pay_invoice("desk")),
            ("16:15", lambda at: self.check_out("desk", at)),
            ("17:50", lambda at: self.check_out("flex", at)),
        ]

    def moment(self, clock: str) -> datetime:
        return datetime.combine(self.today, datetime.strptime(clock, "%H:%M").time(), UTC)

    def name(self, who: str) -> str:
        return str(self.members[who]["name"])

    # -- memberships ------------------------------------------------------------------------

    def sign_up(self, who: str, plan: Plan) -> str:
        member = self.sim.create("membership", state="unconfirmed", plan=self.sim.data.plan(plan))
        self.members[who] = member
        return f"{member['name']} signed up online for {plan.name} and waits for confirmation"

    def add_member(self, who: str, plan: Plan, at: datetime) -> str:
        member = self.sim.create(
            "membership",
            emit=["created_membership", "confirmed_membership"],
            plan=self.sim.data.plan(plan),
            confirmed_at=cobot_datetime(at),
            starts_at=cobot_date(self.today),
            joined_at=cobot_date(self.today),
        )
        self.members[who] = member
        return f"The manager added {member['name']} ({plan.name}), confirmed at once"

    def confirm(self, who: str, at: datetime) -> str:
        self._update_member(
            who,
            confirmed_at=cobot_datetime(at),
            starts_at=cobot_date(self.today),
            joined_at=cobot_date(self.today),
            customer_number=str(10100 + len(self.members)),
            next_invoice_at=cobot_date(self._first_of_next_month()),
        )
        return f"The manager confirmed {self.name(who)}'s membership"

    def update_details(self, who: str) -> str:
        address = {**self.members[who]["address"], "company": "Placeholder Studio"}
        self._update_member(who, phone="+49 30 5550123", address=address)
        return f"{self.name(who)} added a company and a phone number to their profile"

    def change_plan(self, who: str, plan: Plan) -> str:
        self._update_member(who, plan=self.sim.data.plan(plan))
        return f"{self.name(who)} moved to the {plan.name} plan"

    def give_notice(self, who: str) -> str:
        first = self._first_of_next_month()
        last_day = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        self._update_member(who, canceled_to=cobot_date(last_day))
        return f"{self.name(who)} gave notice: the membership ends on {last_day.isoformat()}"

    def leave(self, who: str) -> str:
        self.sim.delete("membership", self.members[who]["id"])
        return (
            f"{self.name(who)} moved away and the manager deleted the membership: "
            "the row stays, flagged as deleted"
        )

    def _update_member(self, who: str, **changes: Any) -> None:
        self.members[who] = self.sim.update("membership", self.members[who]["id"], **changes)

    def _first_of_next_month(self) -> date:
        return (self.today.replace(day=28) + timedelta(days=4)).replace(day=1)

    # -- check-ins and bookings ---------------------------------------------------------------

    def check_in(self, who: str, at: datetime) -> str:
        night = datetime.combine(self.today + timedelta(days=1), time(3, 59, 59), UTC)
        check_in = self.sim.create(
            "check_in",
            member=self.members[who]["id"],
            valid_from=cobot_datetime(at),
            valid_until=cobot_datetime(night),
        )
        self.check_ins[who] = check_in["id"]
        return f"{self.name(who)} checked in"

    def check_out(self, who: str, at: datetime) -> str:
        self.sim.update("check_in", self.check_ins[who], valid_until=cobot_datetime(at))
        return f"{self.name(who)} checked out"

    def book(self, who: str, room: int, start: datetime, hours: int, title: str) -> str:
        resource = RESOURCES[room]
        end = start + timedelta(hours=hours)
        comments = '=HYPERLINK("https://example.org/agenda","agenda")' if room == 3 else None
        self.bookings[who] = self.sim.create(
            "booking",
            member=self.members[who]["id"],
            start=start,
            to=cobot_datetime(end),
            resource={"id": resource.id, "name": resource.name},
            price=float(resource.price_per_hour * hours),
            units=hours,
            title=title,
            comments=comments,
        )
        day = "tomorrow" if start.date() > self.today else "today"
        span = f"{start:%H:%M}-{end:%H:%M}"
        return f"{self.name(who)} booked the {resource.name} {day}, {span}"

    def booking_event(self, who: str, event: str, what: str) -> str:
        booking = self.bookings[who]
        self.sim.emit(event, self.sim.url_for("booking", booking["id"]))
        return f"{self.name(who)}'s booking of the {booking['resource']['name']} {what}"

    def cancel_booking(self, who: str) -> str:
        booking = self.bookings[who]
        self.sim.delete("booking", booking["id"])
        return f"{self.name(who)} canceled the booking of the {booking['resource']['name']}"

    # -- invoices ---------------------------------------------------------------------------

    def create_invoices(self, who: list[str]) -> str:
        for person in who:
            self.invoices[person] = self._new_invoice(person)
        names = ", ".join(self.name(person).split()[0] for person in who)
        return f"Cobot created this month's invoices for {names}"

    def send_invoices(self, who: list[str]) -> str:
        for person in who:
            self.invoices[person] = self.sim.update(
                "invoice",
                self.invoices[person]["id"],
                emit="sent_invoice",
                sent=True,
                sent_status="sent",
            )
        return "The invoices went out by e-mail"

    def pay_invoice(self, who: str) -> str:
        invoice = self.invoices[who]
        self.invoices[who] = self.sim.update(
            "invoice",
            invoice["id"],
            paid=True,
            paid_status="paid",
            paid_at=cobot_date(self.today),
            total_paid_amount=invoice["total_amount"],
        )
        total = f"{invoice['total_amount']} {invoice['currency']}"
        return f"{self.name(who)} paid invoice {invoice['formatted_invoice_number']} ({total})"

    def create_duplicate_invoice(self, who: str) -> str:
        self.invoices["duplicate"] = self._new_invoice(who)
        return f"An invoice for {self.name(who)} was created twice by mistake"

    def delete_duplicate_invoice(self) -> str:
        invoice = self.invoices.pop("duplicate")
        self.sim.delete("invoice", invoice["id"])
        return f"The manager deleted the duplicate invoice {invoice['formatted_invoice_number']}"

    def _new_invoice(self, who: str) -> JSON:
        return self.sim.create(
            "invoice", member=self.members[who]["id"], sent=False, sent_status="unsent"
        )


def play(days: Sequence[Day], feed: Feed, pause: Callable[[float], bool], speed: float) -> bool:
    """Run the days' scripts in one clock order (at the same minute, in the order given),
    paced by ``speed``; False when ``pause`` says to stop early."""
    steps = sorted(
        (
            (clock, number, day, action)
            for number, day in enumerate(days)
            for clock, action in day.script()
        ),
        key=lambda step: step[:2],
    )
    previous = DAY_START.strftime("%H:%M")
    for clock, _, day, action in steps:
        if not pause(minutes_between(previous, clock) * SECONDS_PER_MINUTE / speed):
            return False
        text = action(day.moment(clock))
        feed.add(clock, f"{day.location}: {text}" if day.location else text)
        previous = clock
    feed.finish()
    return True
