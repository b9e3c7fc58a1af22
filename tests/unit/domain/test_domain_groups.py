"""Consent to groups, capacity and quotas (pigeon.domain.groups), and who may see whom
(pigeon.domain.people), without any database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import groups, people
from pigeon.domain.groups import GroupPolicy, admission
from pigeon.protocol.errors import Conflict, Forbidden, NotFound

POLICY = GroupPolicy(max_groups_joined=3, max_groups_created_per_day=2,
                     max_pending_invitations=2)


def code_of(call, *args):
    with pytest.raises((Conflict, Forbidden, NotFound)) as info:
        call(*args)
    return info.value.code


# -- consent ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("setting", "wrote", "sees", "verdict"), [
    ("everyone", False, False, "add"),
    ("contacts", True, False, "add"), ("contacts", False, True, "invite"),
    ("contacts", False, False, "unknown"),
    ("nobody", True, True, "invite"), ("nobody", False, True, "refuse"),
    ("nobody", False, False, "unknown"),
])
def test_the_consent_table(setting: str, wrote: bool, sees: bool, verdict: str):
    assert admission(setting, wrote, sees) == verdict


def test_newcomers_are_sorted_into_added_and_invited_in_the_order_named():
    settings = {2: "everyone", 3: "contacts", 4: "contacts", 5: "nobody"}
    added, invited = groups.sort_newcomers([2, 3, 4, 5], settings, wrote_to_adder={3, 5},
                                           adder_sees={4})
    assert (added, invited) == ([2, 3], [4, 5])


def test_one_who_may_not_be_asked_refuses_the_whole_call():
    settings = {2: "everyone", 3: "nobody", 4: "contacts"}
    assert code_of(groups.sort_newcomers, [2, 3], settings, set(), {3}) == \
        "USER_PRIVACY_RESTRICTED"
    # Someone the adder cannot see is answered as if they did not exist.
    assert code_of(groups.sort_newcomers, [2, 4], settings, set(), set()) == "USER_NOT_FOUND"


@given(st.dictionaries(st.integers(1, 30), st.sampled_from(groups.WHO_CAN_ADD), max_size=10),
       st.sets(st.integers(1, 30)), st.sets(st.integers(1, 30)))
def test_sight_is_asked_only_where_it_decides(settings: dict[int, str], wrote: set[int],
                                              sees: set[int]):
    for uid, setting in settings.items():
        if not groups.needs_sight(setting, uid in wrote):
            assert admission(setting, uid in wrote, True) == admission(setting, uid in wrote,
                                                                       False)


@given(st.dictionaries(st.integers(1, 30), st.sampled_from(groups.WHO_CAN_ADD), max_size=10),
       st.sets(st.integers(1, 30)), st.sets(st.integers(1, 30)))
def test_sorting_agrees_with_admission_person_by_person(settings: dict[int, str],
                                                        wrote: set[int], sees: set[int]):
    named = sorted(settings)
    verdicts = {u: admission(settings[u], u in wrote, u in sees) for u in named}
    try:
        added, invited = groups.sort_newcomers(named, settings, wrote, sees)
    except (Forbidden, NotFound):
        assert any(v in ("refuse", "unknown") for v in verdicts.values())
        return
    assert added == [u for u in named if verdicts[u] == "add"]
    assert invited == [u for u in named if verdicts[u] == "invite"]


def test_founders_and_newcomers():
    assert groups.founders(1, [3, 2, 3, 1]) == [2, 3]
    assert groups.newcomers([4, 2, 4, 3], {2}) == [3, 4]
    assert code_of(groups.newcomers, [2], {2}) == "ALREADY_MEMBER"


# -- capacity and quotas ----------------------------------------------------------------------
def test_capacity_counts_who_is_in_and_who_joins():
    groups.check_capacity(9, 1, 10)
    assert code_of(groups.check_capacity, 9, 2, 10) == "GROUP_FULL"


def test_joined_and_pending_quotas():
    groups.check_joined([(1, 2), (2, 0)], POLICY)
    assert code_of(groups.check_joined, [(1, 2), (2, 3)], POLICY) == "QUOTA_EXCEEDED"
    groups.check_pending([(1, 1)], POLICY)
    assert code_of(groups.check_pending, [(1, 2)], POLICY) == "QUOTA_EXCEEDED"
    groups.check_joined([(1, 10**6)], None)  # no policy: the store's own tests
    groups.check_pending([(1, 10**6)], None)
    assert groups.fresh_invitees([5, 3, 4], {3}) == [5, 4]


def test_the_created_quota_counts_a_sliding_day_on_a_fake_clock():
    created: list[float] = []
    now = 1_000_000.0

    def create() -> None:
        since = groups.creation_window_start(now)
        groups.check_created(sum(1 for t in created if t > since), POLICY)
        created.append(now)

    create()
    now += 3600
    create()
    assert code_of(create) == "QUOTA_EXCEEDED"
    now += groups.CREATION_WINDOW - 3600  # the first falls out of the window, not the second
    create()
    assert code_of(create) == "QUOTA_EXCEEDED"


# -- who may see whom -------------------------------------------------------------------------
def test_any_tie_lets_one_see_and_none_hides():
    assert not people.may_see(people.Ties())
    for field in people.Ties._fields:
        assert people.may_see(people.Ties(**{field: True}))


def test_unknown_and_unseen_users_get_one_answer():
    people.require_known([1, 2], {1, 2, 3})
    assert code_of(people.require_known, [1, 4, 5], {1}) == "USER_NOT_FOUND"
    with pytest.raises(NotFound) as unknown:
        people.require_known([4], set())
    with pytest.raises(NotFound) as unseen:
        groups.sort_newcomers([4], {4: "contacts"}, set(), set())
    assert str(unknown.value) == str(unseen.value) == "USER_NOT_FOUND: no user with id 4"
    assert not people.remembers_discovery(3, 3)
    assert people.makes_contact("private") and not people.makes_contact("group")
