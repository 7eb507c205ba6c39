import pytest

from csms.handlers.rpc import (
    MAX_NESTING,
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


def nested(depth: int) -> str:
    """A CALL whose payload nests `depth` levels: {"a": [{"a": [...]}]}."""
    inner = "1"
    for level in range(depth - 1):
        inner = f'{{"a":{inner}}}' if level % 2 else f"[{inner}]"
    return f'[2,"deep","DataTransfer",{{"vendorId":"V","data":{inner}}}]'


def test_payloads_nested_up_to_the_bound_are_accepted() -> None:
    frame = parse_frame(nested(MAX_NESTING))
    assert isinstance(frame, Call) and frame.message_id == "deep"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 300, 1000, 1100])
def test_deeper_payloads_are_a_format_error_that_names_the_bound(depth: int) -> None:
    # 1100 is past orjson's own limit (1,024): the frame is not parsed at all.
    with pytest.raises(FrameError) as info:
        parse_frame(nested(depth))
    assert info.value.message_id == "deep"
    assert info.value.error.kind is ErrorKind.FORMAT
    assert f"more than {MAX_NESTING} levels" in info.value.error.description


def test_many_shallow_brackets_are_not_too_deep() -> None:
    values = ",".join('{"value":"1","unit":"Wh"}' for _ in range(200))
    text = f'[2,"m","MeterValues",{{"connectorId":1,"meterValue":[{{"sampledValue":[{values}]}}]}}]'
    assert isinstance(parse_frame(text), Call)
    assert isinstance(parse_frame(text.encode()), Call)


@pytest.mark.parametrize(
    "text",
    [
        '[2,"nul","Authorize",{"idTag":"\\u0000"}]',
        '[2,"nul","DataTransfer",{"vendorId":"V","data":{"a":["x\\u0000y"]}}]',
        '[2,"nul","DataTransfer",{"vendorId":"V","data":{"k\\u0000":1}}]',
    ],
)
def test_a_nul_in_any_string_or_key_is_a_property_error(text: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(text)
    assert (info.value.message_id, info.value.error.kind) == ("nul", ErrorKind.PROPERTY)
    with pytest.raises(FrameError):
        parse_frame(text.encode())


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    frame = parse_frame('[2,"ok","Authorize",{"idTag":"a\\\\u0000"}]')
    assert isinstance(frame, Call) and frame.payload == {"idTag": "a\\u0000"}
    frame = parse_frame(b'[2,"ok","Authorize",{"idTag":"a\\\\u0000"}]')
    assert isinstance(frame, Call) and frame.payload == {"idTag": "a\\u0000"}
