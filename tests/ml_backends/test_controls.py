from __future__ import annotations

import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, MaskLabel, PolygonLabel
from ml_backends.controls import (
    BrushLabelsControl,
    ChoicesControl,
    LabelConfig,
    LabelConfigError,
    PolygonLabelsControl,
    RectangleLabelsControl,
)

CONFIG = """
<View>
  <Image name="sheet" value="$scan"/>
  <RectangleLabels name="elements" toName="sheet">
    <Label value="Barcode"/><Label value="Color card"/><Label value="leaf_whole"/><Label value="Specimen label"/>
  </RectangleLabels>
  <BrushLabels name="plant_mask" toName="sheet"><Label value="plant"/></BrushLabels>
  <PolygonLabels name="plant_outline" toName="sheet"><Label value="specimen"/></PolygonLabels>
  <Choices name="verdict" toName="sheet" perRegion="true"><Choice value="correct"/></Choices>
  <Choices name="phenology" toName="sheet">
    <Choice value="Flowering"/><Choice value="fruit"/><Choice value="sterile"/>
  </Choices>
  <TextArea name="comment" toName="sheet"/>
</View>
"""


def test_config_lists_the_tags_a_model_fills() -> None:
    config = LabelConfig.parse(CONFIG)
    assert config.image_name == "sheet"
    assert config.image_key == "scan"
    assert [type(c) for c in config.controls] == [
        RectangleLabelsControl,
        BrushLabelsControl,
        PolygonLabelsControl,
        ChoicesControl,
    ]  # the per-region verdict and the TextArea are the experts'


def test_values_map_through_taxonomy_aliases() -> None:
    [boxes] = LabelConfig.parse(CONFIG).controls_of(RectangleLabelsControl)
    nonvegetal = ("barcode", "label", "envelope", "colour_chart", "ruler", "stamp")
    organs = ("leaf", "flower", "fruit", "seed", "stem", "root")
    assert boxes.class_map(nonvegetal) == {"barcode": "Barcode", "colour_chart": "Color card"}
    assert boxes.class_map(organs) == {"leaf": "leaf_whole"}
    assert boxes.fits("detect-nonvegetal", "detect-nonvegetal", nonvegetal)
    assert not boxes.fits("segment-plant", "segment-plant", ("plant",))


def test_relabel_keeps_only_this_tags_classes_in_the_configs_spelling() -> None:
    [boxes] = LabelConfig.parse(CONFIG).controls_of(RectangleLabelsControl)
    mapping = boxes.class_map(("barcode", "label", "envelope", "colour_chart", "ruler", "stamp"))
    predicted = [
        BoxLabel(label="colour_chart", x=1, y=2, width=3, height=4, score=0.9),
        BoxLabel(label="stamp", x=1, y=2, width=3, height=4, score=0.8),  # not in this config
        ClassificationLabel(label="flowering", control="phenology"),  # another tag's
    ]
    [kept] = boxes.relabel(predicted, mapping)
    assert kept.label == "Color card"
    assert kept.control == "elements"
    assert kept.score == 0.9


def test_segmentation_tags_take_masks_and_outlines_respectively() -> None:
    config = LabelConfig.parse(CONFIG)
    [brush] = config.controls_of(BrushLabelsControl)
    [polygon] = config.controls_of(PolygonLabelsControl)
    import numpy as np

    mask = MaskLabel(label="plant", mask=np.ones((2, 2), dtype=bool))
    outline = PolygonLabel(label="plant", points=((0, 0), (1, 0), (1, 1)))
    assert [type(x) for x in brush.relabel([mask, outline], brush.class_map(("plant",)))] == [MaskLabel]
    assert polygon.relabel([mask, outline], polygon.class_map(("plant",)))[0].label == "specimen"


def test_trait_choices_fit_by_name_or_by_values() -> None:
    [choices] = LabelConfig.parse(CONFIG).controls_of(ChoicesControl)
    assert choices.class_map(("flowering", "fruiting", "sterile")) == {
        "flowering": "Flowering",
        "fruiting": "fruit",
        "sterile": "sterile",
    }
    assert choices.fits("classify-trait", "phenology", ("flowering", "fruiting", "sterile"))
    assert not choices.fits("classify-trait", "leaf_margin", ("smooth", "toothed"))


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<View><Image", "not valid XML"),
        ('<View><Text name="t" value="$text"/></View>', "no <Image> tag"),
        ('<View><Image name="i" value="image"/></View>', "value="),
    ],
)
def test_bad_configs_say_what_is_wrong(xml: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        LabelConfig.parse(xml)
