"""Property tests of the YOLO converter: boxes and polygons round trip through label text; any text gives
one label per non-blank line or a clear error (:class:`LabelError`, :class:`UnknownLabelError`).

Masks are left out: they become polygons by design (lossy, IoU ~0.99; tests/herbarium/labels/test_yolo.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from herbarium.labels import LabelState, SpecimenLabels
from herbarium.labels.yolo import as_yolo_detect, as_yolo_segment, from_yolo_detect, from_yolo_segment
from herbarium.taxonomy import ORGANS
from tests.herbarium.labels.label_strategies import plain_specimens, read_or_clear_error, same_geometry

PROVENANCE: dict[str, Any] = {"source": "organs@1.2.0", "state": LabelState.VALIDATED}  # passed to the readers
READERS = st.sampled_from([from_yolo_detect, from_yolo_segment])
# Tokens a label line might hold: class indices in and out of range, numbers in every spelling, junk.
TOKENS = (
    st.integers(-2, 8).map(str)
    | st.floats().map(repr)
    | st.floats(0, 1).map(str)
    | st.sampled_from(["nan", "inf", "-inf", "1e400", "1_0", "0x1", "٣", "", "leaf", "0.5,", "+.5", "1e-320"])
    | st.text(max_size=4)
)
SEPARATORS = st.sampled_from([" ", "  ", "\t", " \u00a0", "\x0b"])
LINES = st.lists(st.lists(TOKENS, max_size=10).flatmap(lambda t: SEPARATORS.map(lambda sep: sep.join(t))), max_size=6)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r", "\u2028"])


def non_blank_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.split())


def assert_same_labels(back: SpecimenLabels, kept: list[Any], with_scores: bool) -> None:
    """Same kinds and canonical classes in order, geometry within float rounding, scores when written."""
    assert len(back.labels) == len(kept)
    for got, want in zip(back.labels, kept, strict=True):
        assert got.label == ORGANS.resolve(want.label)
        assert same_geometry(got, want), (got, want)
        assert got.score == (want.score if with_scores else None)
        assert (got.source, got.state) == (PROVENANCE["source"], PROVENANCE["state"])
        assert (got.region_id, got.control, got.comment, got.attributes) == (None, None, None, {})


@given(plain_specimens(), st.booleans())
def test_boxes_round_trip_through_detect_lines(specimen: SpecimenLabels, with_scores: bool) -> None:
    text = as_yolo_detect(specimen, ORGANS, with_scores=with_scores)
    back = from_yolo_detect(text, specimen.width, specimen.height, ORGANS, **PROVENANCE)
    assert_same_labels(back, specimen.boxes, with_scores)


@given(plain_specimens(), st.booleans())
def test_polygons_round_trip_through_segment_lines(specimen: SpecimenLabels, with_scores: bool) -> None:
    text = as_yolo_segment(specimen, ORGANS, with_scores=with_scores)
    back = from_yolo_segment(text, specimen.width, specimen.height, ORGANS, **PROVENANCE)
    assert_same_labels(back, specimen.polygons, with_scores)


@given(READERS, st.text() | LINES.flatmap(lambda lines: LINE_ENDS.map(lambda end: end.join(lines))))
def test_any_text_gives_one_label_per_line_or_a_clear_error(reader: Any, text: str) -> None:
    back = read_or_clear_error(lambda: reader(text, 640, 480, ORGANS))
    if back is None:
        return
    assert len(back.labels) == non_blank_lines(text)


# Sizes come from the caller (the image), not the file: float-sized, as an image's are.
SIZES = st.integers(-3, 3) | st.integers(-(2**64), 2**64)


ONE_VALID_LINE = st.sampled_from(
    [(from_yolo_detect, "0 0.5 0.5 0.25 0.25\n"), (from_yolo_segment, "0 0 0 0.5 0 0.5 1\n")]
)


@given(ONE_VALID_LINE, SIZES, SIZES)
def test_any_image_size_gives_labels_or_a_clear_error(case: tuple[Any, str], width: int, height: int) -> None:
    reader, text = case
    back = read_or_clear_error(lambda: reader(text, width, height, ORGANS))
    if back is None:
        return
    assert (back.width, back.height, len(back.labels)) == (width, height, 1)
