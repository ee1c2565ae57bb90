"""Running the daemon: wiring, scheduler, systemd notify, health, metrics, logs and status."""
