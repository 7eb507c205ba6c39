import pytest

from csms.handlers.rpc import (
    Call,
    CallError,
    CallResult,
    ErrorKind,
    FrameError,
    UnreadableFrame,
    parse_frame,
)


def test_parses_the_three_message_types() -> None:
    assert parse_frame('[2,"a","Heartbeat",{}]') == Call("a", "Heartbeat", {})
    assert parse_frame('[3,"a",{"x":1}]') == CallResult("a", {"x": 1})
    assert parse_frame('[4,"a","GenericError","boom",{}]') == CallError(
        "a", "GenericError", "boom", {}
    )


@pytest.mark.parametrize("text", ["garbage", "{}", "[]", "[2]", '[2, 5, "Heartbeat", {}]'])
def test_frames_without_a_readable_id(text: str) -> None:
    with pytest.raises(UnreadableFrame):
        parse_frame(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('[2,"id7","Heartbeat",{', ErrorKind.FORMAT),
        ('[2,"id7","Heartbeat",[]]', ErrorKind.FORMAT),
        ('[2,"id7","Heartbeat"]', ErrorKind.PROTOCOL),
        ('[2,"id7",5,{}]', ErrorKind.PROTOCOL),
        ('[9,"id7","Heartbeat",{}]', ErrorKind.MESSAGE_TYPE),
    ],
)
def test_bad_frames_with_a_readable_id(text: str, kind: ErrorKind) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(text)
    assert info.value.message_id == "id7"
    assert info.value.error.kind is kind
