"""Members and roles (pigeon.domain.membership), without any database.

Besides examples, a state machine drives random adds, removals, departures and role changes
through the rules against an in-memory group: whatever happens, a group with members has
exactly one owner, and every change that went through was one the role table allows.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pigeon.domain.membership import (
    heir,
    may_manage,
    member,
    private_members,
    removal,
    role_changes,
)
from pigeon.domain.records import MemberRow, Standing
from pigeon.protocol.errors import Conflict, Forbidden, NotFound, PigeonError
from pigeon.protocol.types import Role

ROLES: tuple[Role, ...] = ("owner", "admin", "member")


def standing(role: Role, kind: str = "group", history_from: int = 0) -> Standing:
    return Standing(kind, role, history_from, 0, 10)  # type: ignore[arg-type]


def row(user_id: int, role: Role, joined: float = 0.0, history_from: int = 0) -> MemberRow:
    return MemberRow(user_id, role, joined, history_from)


# -- examples ---------------------------------------------------------------------------------
def test_no_standing_is_not_a_member_alike_for_any_chat():
    with pytest.raises(Forbidden) as info:
        member(None, 42)
    assert info.value.code == "NOT_A_MEMBER"
    assert member(standing("member"), 42) == standing("member")


@pytest.mark.parametrize("role", ROLES)
def test_only_owner_and_admins_manage_a_group(role: Role):
    if role == "member":
        with pytest.raises(Forbidden) as info:
            may_manage(standing(role))
        assert info.value.code == "NOT_ADMIN"
    else:
        may_manage(standing(role))


def test_nothing_is_managed_in_a_private_chat():
    with pytest.raises(Forbidden) as info:
        may_manage(standing("member", kind="private"))
    assert info.value.code == "FORBIDDEN"


@pytest.mark.parametrize(("actor", "target", "allowed"), [
    ("owner", "admin", True), ("owner", "member", True),
    ("admin", "member", True), ("admin", "admin", False), ("admin", "owner", False),
    ("member", "member", False),
])
def test_who_may_remove_whom(actor: Role, target: Role, allowed: bool):
    if allowed:
        assert removal(1, standing(actor), 2, row(2, target, history_from=7)) == (2, 7, False)
    else:
        with pytest.raises(Forbidden) as info:
            removal(1, standing(actor), 2, row(2, target))
        assert info.value.code == "NOT_ADMIN"


def test_removing_someone_not_in_the_group():
    with pytest.raises(NotFound) as info:
        removal(1, standing("owner"), 2, None)
    assert info.value.code == "USER_NOT_FOUND"


@pytest.mark.parametrize("role", ROLES)
def test_anyone_may_leave_and_the_owner_leaving_needs_an_heir(role: Role):
    leaving = removal(1, standing(role, history_from=3), 1, None)
    assert leaving == (1, 3, role == "owner")


def test_the_heir_is_the_longest_standing_admin_else_member():
    members = [row(5, "member", 1.0), row(6, "admin", 3.0), row(7, "admin", 2.0),
               row(8, "member", 0.5)]
    assert heir(members) == row(7, "admin", 2.0)
    assert heir([r for r in members if r.role == "member"]) == row(8, "member", 0.5)
    assert heir([row(3, "member", 1.0), row(2, "member", 1.0)]) == row(2, "member", 1.0)
    assert heir([]) is None


def test_only_the_owner_changes_roles_and_hands_the_group_over():
    assert role_changes(1, standing("owner"), 2, row(2, "member"), "admin") == [(2, "admin")]
    assert role_changes(1, standing("owner"), 2, row(2, "admin"), "owner") == [
        (2, "owner"), (1, "admin")]
    with pytest.raises(Forbidden):
        role_changes(1, standing("admin"), 2, row(2, "member"), "admin")
    with pytest.raises(NotFound):
        role_changes(1, standing("owner"), 2, None, "admin")
    with pytest.raises(Conflict) as info:
        role_changes(1, standing("owner"), 1, row(1, "owner"), "member")
    assert info.value.code == "PEER_IS_SELF"


def test_a_private_chat_is_keyed_by_its_pair():
    assert private_members(5, 3) == private_members(3, 5) == (3, 5)
    assert private_members(4, 4) == (4,)


# -- properties -------------------------------------------------------------------------------
member_rows = st.lists(
    st.builds(MemberRow, st.integers(1, 50), st.sampled_from(("admin", "member")),
              st.floats(0, 100, allow_nan=False), st.integers(0, 10)),
    unique_by=lambda r: r.user_id, max_size=12)


@given(member_rows)
def test_the_heir_needs_only_the_most_senior_of_each_role(rows: list[MemberRow]):
    chosen = heir(rows)
    minima = [min((r for r in rows if r.role == role), key=lambda r: (r.joined, r.user_id))
              for role in ("admin", "member") if any(r.role == role for r in rows)]
    assert heir(minima) == chosen
    if chosen is not None:
        assert chosen.role == ("admin" if any(r.role == "admin" for r in rows) else "member")
        assert all((chosen.joined, chosen.user_id) <= (r.joined, r.user_id)
                   for r in rows if r.role == chosen.role)


USERS = st.integers(1, 8)


class Group(RuleBasedStateMachine):
    """One group, changed only through the rules; the rules' refusals leave it as it was."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.rows: dict[int, MemberRow] = {1: row(1, "owner")}

    def tick(self) -> float:
        self.now += 1.0
        return self.now

    def standing(self, user_id: int) -> Standing:
        r = self.rows[user_id]
        return Standing("group", r.role, r.history_from, 0, 0)

    @precondition(lambda self: not self.rows)
    @rule(user=USERS)
    def found_again(self, user: int) -> None:
        self.rows = {user: row(user, "owner", self.tick())}

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), user=USERS)
    def add(self, data: st.DataObject, user: int) -> None:
        actor = data.draw(st.sampled_from(sorted(self.rows)))
        try:
            may_manage(self.standing(actor))
        except Forbidden:
            assert self.rows[actor].role == "member"
            return
        self.rows.setdefault(user, row(user, "member", self.tick()))

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), user=USERS)
    def remove(self, data: st.DataObject, user: int) -> None:
        actor = data.draw(st.sampled_from(sorted(self.rows)))
        before = self.rows[actor].role, self.rows.get(user)
        try:
            decided = removal(actor, self.standing(actor), user, self.rows.get(user))
        except PigeonError:
            return
        if user != actor:  # what the role table allows
            actor_role, target = before
            assert target is not None and target.role != "owner"
            assert actor_role == "owner" or (actor_role == "admin" and target.role == "member")
        del self.rows[decided.user_id]
        if decided.owner_leaves:
            chosen = heir(self.rows.values())
            if chosen is not None:
                self.rows[chosen.user_id] = chosen._replace(role="owner")

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), user=USERS, role=st.sampled_from(ROLES))
    def set_role(self, data: st.DataObject, user: int, role: Role) -> None:
        actor = data.draw(st.sampled_from(sorted(self.rows)))
        try:
            changes = role_changes(actor, self.standing(actor), user, self.rows.get(user), role)
        except PigeonError:
            return
        assert self.rows[actor].role == "owner"
        for uid, new in changes:
            self.rows[uid] = self.rows[uid]._replace(role=new)

    @invariant()
    def one_owner_while_anyone_is_in(self) -> None:
        owners = [uid for uid, r in self.rows.items() if r.role == "owner"]
        assert len(owners) == (1 if self.rows else 0)


TestGroup = Group.TestCase
TestGroup.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
