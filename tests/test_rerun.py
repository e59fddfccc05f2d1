"""NamedInstances: a re-run cell replaces its named server instead of starting a second one."""

from __future__ import annotations

from lab_helpers.rerun import NamedInstances


class Service:
    """Records its own stop, and forgets itself as the course's servers do."""

    def __init__(self, registry: NamedInstances[Service], name: str | None) -> None:
        self.registry, self.name, self.stopped = registry, name, 0

    def start(self) -> Service:
        self.registry.replace(self.name)
        self.registry.remember(self.name, self)
        return self

    def stop(self) -> None:
        self.stopped += 1
        self.registry.forget(self.name, self)


def test_starting_under_a_taken_name_stops_the_previous_instance() -> None:
    registry: NamedInstances[Service] = NamedInstances()
    first = Service(registry, "lab").start()
    second = Service(registry, "lab").start()
    assert first.stopped == 1 and second.stopped == 0
    assert registry.running() == {"lab": second}


def test_other_names_and_unnamed_instances_are_left_alone() -> None:
    registry: NamedInstances[Service] = NamedInstances()
    lab = Service(registry, "lab").start()
    other = Service(registry, "other").start()
    unnamed = [Service(registry, None).start() for _ in range(2)]
    assert lab.stopped == other.stopped == 0 and all(service.stopped == 0 for service in unnamed)
    assert registry.running() == {"lab": lab, "other": other}


def test_a_late_stop_of_the_old_instance_does_not_forget_its_successor() -> None:
    registry: NamedInstances[Service] = NamedInstances()
    first = Service(registry, "lab").start()
    second = Service(registry, "lab").start()
    first.stop()  # stop() is idempotent: called again, e.g. by the learner's own clean-up cell
    assert registry.running() == {"lab": second}
    second.stop()
    assert registry.running() == {}


def test_running_is_a_copy() -> None:
    registry: NamedInstances[Service] = NamedInstances()
    Service(registry, "lab").start()
    registry.running().clear()
    assert list(registry.running()) == ["lab"]
