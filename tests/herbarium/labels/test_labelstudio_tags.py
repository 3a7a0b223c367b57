"""The table of Label Studio tags is consistent, and the packages that read tags agree with it."""

from __future__ import annotations

import pytest

from connectors.sync.task_fields import label_controls
from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, MaskLabel, PolygonLabel
from herbarium.labels.labelstudio import from_labelstudio
from herbarium.labels.labelstudio_tags import KNOWN_TYPES, LABEL_TAGS, REGION_TAGS, TEXTAREA_TYPE
from ml_backends.controls import CONTROL_CLASSES

FIELD_KINDS = {"detections", "polylines", "classification"}


def test_each_tag_is_declared_once_with_its_result_type_its_lower_cased_name() -> None:
    # The sync matches config tags lower-cased against result types; the backends match exact names.
    assert [tag.result_type for tag in LABEL_TAGS] == [tag.name.lower() for tag in LABEL_TAGS]
    assert len({tag.name for tag in LABEL_TAGS}) == len(LABEL_TAGS)
    assert list(KNOWN_TYPES) == [*(tag.result_type for tag in LABEL_TAGS), TEXTAREA_TYPE]
    assert len(set(KNOWN_TYPES)) == len(KNOWN_TYPES)


def test_regions_become_region_labels_and_other_tags_classifications() -> None:
    assert {tag.label_class for tag in REGION_TAGS} == {BoxLabel, PolygonLabel, MaskLabel}
    for tag in LABEL_TAGS:
        assert tag.field_kind in FIELD_KINDS, tag
        assert (tag.field_kind == "classification") == (not tag.region), tag
        assert (tag.label_class is ClassificationLabel) == (not tag.region), tag


def test_the_backend_control_registry_covers_exactly_the_table() -> None:
    assert set(CONTROL_CLASSES) == {tag.name for tag in LABEL_TAGS}
    for tag in LABEL_TAGS:
        control = CONTROL_CLASSES[tag.name]
        assert control.tag == tag.name
        assert control.label_type == (tag.label_class,)


def test_the_sync_gives_each_tag_its_field_kind() -> None:
    controls = "".join(
        f'<{tag.name} name="c{i}" toName="image"><Label value="x"/></{tag.name}>' for i, tag in enumerate(LABEL_TAGS)
    )
    config = f'<View><Image name="image" value="$image"/>{controls}<TextArea name="note" toName="image"/></View>'
    assert label_controls(config) == {f"c{i}": tag.field_kind for i, tag in enumerate(LABEL_TAGS)}


def test_the_converter_knows_exactly_the_table_types() -> None:
    with pytest.raises(LabelError, match="expected one of " + ", ".join(KNOWN_TYPES) + "$"):
        from_labelstudio([{"type": "ellipselabels", "from_name": "label", "value": {}}], width=10, height=10)
