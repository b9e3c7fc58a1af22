"""The rules of blocks, message requests, contacts and the operator's tools (issue 11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import admin, blocks, requests
from pigeon.domain.requests import Acquaintance
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound

settings_ = st.sampled_from(requests.WHO_CAN_MESSAGE)
ties = st.builds(Acquaintance, st.booleans(), st.booleans(), st.booleans(), st.booleans())
states = st.sampled_from([None, "pending", "accepted", "declined"])


@given(settings_, ties)
def test_first_contact_delivers_exactly_to_acquaintances_or_everyone(setting, tie) -> None:
    verdict = requests.first_contact(setting, tie)
    assert (verdict == "deliver") == (setting == "everyone" or any(tie))
    if verdict != "deliver":
        assert verdict == ("request" if setting == "contacts" else "refuse")


def test_refusal_is_privacy_restricted() -> None:
    requests.check_first_contact("request", 5)
    with pytest.raises(Forbidden) as refused:
        requests.check_first_contact("refuse", 5)
    assert refused.value.code == "USER_PRIVACY_RESTRICTED"


@given(states)
def test_request_states(state) -> None:
    """Delivered and hidden never both hold; only a pending request is answered."""
    assert not (requests.delivered(state) and requests.hidden(state))
    assert requests.in_chat_list(state) == (state in (None, "accepted"))
    if state == "pending":
        requests.answer(state, 1)
    else:
        with pytest.raises(NotFound):
            requests.answer(state, 1)


def test_contacts_bounds() -> None:
    requests.check_contact(1, 2, True, 0, False)
    requests.check_contact(1, 2, True, requests.MAX_CONTACTS, True)  # renaming always works
    with pytest.raises(Conflict):
        requests.check_contact(1, 2, True, requests.MAX_CONTACTS, False)
    with pytest.raises(NotFound):
        requests.check_contact(1, 2, False, 0, False)
    with pytest.raises(Conflict):
        requests.check_contact(1, 1, True, 0, False)


def test_blocks_and_reports() -> None:
    blocks.check_block(1, 2, True, 0)
    with pytest.raises(NotFound):
        blocks.check_block(1, 2, False, 0)
    with pytest.raises(Conflict):
        blocks.check_block(1, 2, True, blocks.MAX_BLOCKED)
    assert blocks.split_blocked([3, 1, 2], {1}) == ([3, 2], [1])
    blocks.check_report(1, 2, blocks.MAX_REPORTS_PER_DAY - 1)
    with pytest.raises(Conflict):
        blocks.check_report(1, 2, blocks.MAX_REPORTS_PER_DAY)
    with pytest.raises(Conflict):
        blocks.check_report(1, 1, 0)
    assert blocks.validate_reason("  spam\nand more ") == "spam\nand more"
    with pytest.raises(InvalidArgument):
        blocks.validate_reason("\x1b[31m")


@given(st.text(max_size=80))
def test_search_key_is_safe_for_like(query: str) -> None:
    try:
        key = admin.search_key(query)
    except InvalidArgument:
        assert not query.strip() or len(query.strip()) > admin.MAX_QUERY_CHARS \
            or not query.strip().isprintable()
        return
    unescaped = key.escaped.replace("\\\\", "").replace("\\%", "").replace("\\_", "")
    assert "%" not in unescaped and "_" not in unescaped
    assert 0 <= key.user_id < 2**63


def test_search_key_reads_ids_phones_and_usernames() -> None:
    assert admin.search_key("user:42").user_id == 42
    assert admin.search_key("42").user_id == 42
    assert admin.search_key("@Alice_X").username == "alice_x"
    assert admin.search_key("+12025550101").phone == "+12025550101"


def test_the_service_account_is_not_the_operators_to_remove() -> None:
    with pytest.raises(Forbidden):
        admin.check_target(1, admin.SERVICE_PHONE)
    with pytest.raises(NotFound):
        admin.check_target(1, None)
    admin.check_target(1, "+12025550101")
    assert admin.deleted_phone(7) == "deleted:7"


def test_a_withheld_message_reaches_its_author_only() -> None:
    from pigeon.domain import audience

    told = audience.withheld(7)
    assert audience.members_in(told, [(7, 0), (8, 0)]) == [7]
    assert not audience.includes(told, 8, 0)
