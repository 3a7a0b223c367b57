"""Small built-in vocabularies for synthetic Darwin Core records, and the draw of one record.

Taxa are real species with the leaf margin and shapes they roughly have, so that a sheet's traits
agree with its name. Institutions are invented: a synthetic sheet must never pass for a real
accession. Text is ASCII so every glyph exists in Pillow's built-in font.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Darwin Core terms written per sheet, in CSV column order.
DARWIN_CORE_TERMS = (
    "catalogNumber",
    "scientificName",
    "family",
    "genus",
    "recordedBy",
    "eventDate",
    "country",
    "locality",
    "institutionCode",
)

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Taxon:
    """A species and how its dried specimens look."""

    genus: str
    epithet: str
    author: str
    family: str
    margin: str  # TRAITS["leaf_margin"] class
    leaf_shapes: tuple[str, ...]
    flower_colour: RGB
    fruit_kind: str  # berry, capsule or pod
    fruit_colour: RGB
    opposite: bool  # leaves in pairs at each node, else alternate
    habits: tuple[str, ...]  # herb, twig, rosette

    @property
    def name(self) -> str:
        return f"{self.genus} {self.epithet}"

    @property
    def scientific_name(self) -> str:
        return f"{self.genus} {self.epithet} {self.author}"


FLOWER_COLOURS: dict[str, RGB] = {
    "green": (150, 160, 110),
    "lilac": (175, 140, 185),
    "white": (238, 235, 222),
    "cream": (190, 170, 100),
    "red": (150, 90, 80),
    "blue": (90, 120, 200),
    "violet": (110, 80, 170),
    "yellow": (228, 195, 65),
    "pink": (200, 110, 160),
    "brown": (170, 150, 110),
}
FRUIT_COLOURS: dict[str, RGB] = {
    "brown": (115, 95, 62),
    "black": (38, 33, 45),
    "blue": (55, 50, 80),
    "straw": (170, 160, 110),
    "green": (100, 110, 60),
    "red": (140, 80, 50),
}


def _taxon(row: str) -> Taxon:
    """Parse ``name | family | margin | leaf shapes | arrangement | habits | flower colour | fruit kind and colour``."""
    name, family, margin, shapes, leaves, habits, flower, fruit = (part.strip() for part in row.split("|"))
    genus, epithet, author = name.split(" ", 2)
    fruit_kind, fruit_colour = fruit.split()
    return Taxon(
        genus=genus,
        epithet=epithet,
        author=author,
        family=family,
        margin=margin,
        leaf_shapes=tuple(shapes.split()),
        flower_colour=FLOWER_COLOURS[flower],
        fruit_kind=fruit_kind,
        fruit_colour=FRUIT_COLOURS[fruit_colour],
        opposite=leaves == "opposite",
        habits=tuple(habits.split()),
    )


_TAXON_TABLE = (
    "Urtica dioica L. | Urticaceae | toothed | ovate lanceolate | opposite | herb | green | capsule brown",
    "Mentha aquatica L. | Lamiaceae | toothed | ovate | opposite | herb | lilac | capsule brown",
    "Lamium album L. | Lamiaceae | toothed | ovate | opposite | herb | white | capsule brown",
    "Prunus spinosa L. | Rosaceae | toothed | elliptic | alternate | twig | white | berry blue",
    "Betula pendula Roth | Betulaceae | toothed | ovate | alternate | twig | cream | capsule brown",
    "Ulmus minor Mill. | Ulmaceae | toothed | elliptic ovate | alternate | twig | red | pod straw",
    "Veronica chamaedrys L. | Plantaginaceae | toothed | ovate | opposite | herb rosette | blue | capsule brown",
    "Salvia pratensis L. | Lamiaceae | toothed | ovate lanceolate | opposite | rosette herb | violet | capsule brown",
    "Ligustrum vulgare L. | Oleaceae | smooth | lanceolate elliptic | opposite | twig | white | berry black",
    "Vinca minor L. | Apocynaceae | smooth | elliptic | opposite | herb | violet | pod green",
    "Hypericum perforatum L. | Hypericaceae | smooth | elliptic lanceolate | opposite | herb | yellow | capsule red",
    "Lysimachia vulgaris L. | Primulaceae | smooth | lanceolate | opposite | herb | yellow | capsule brown",
    "Cornus sanguinea L. | Cornaceae | smooth | ovate elliptic | opposite | twig | white | berry black",
    "Silene vulgaris (Moench) Garcke | Caryophyllaceae | smooth | lanceolate | opposite | herb | white | capsule straw",
    "Chamaenerion angustifolium (L.) Scop. | Onagraceae | smooth | lanceolate | alternate | herb | pink | pod red",
    "Plantago lanceolata L. | Plantaginaceae | smooth | lanceolate | alternate | rosette | brown | capsule brown",
)
TAXA: tuple[Taxon, ...] = tuple(_taxon(row) for row in _TAXON_TABLE)


@dataclass(frozen=True)
class Institution:
    code: str  # two letters: keeps the Code 128 barcode narrow enough for a 512 px sheet
    name: str


INSTITUTIONS: tuple[Institution, ...] = (
    Institution("PA", "PlantAI Synthetic Herbarium"),
    Institution("HS", "Herbarium Syntheticum"),
    Institution("FX", "Flora Exemplaria Collection"),
    Institution("SV", "Silva Virtualis Herbarium"),
)

COLLECTORS = (
    "A. Moreau",
    "J. Whitfield",
    "M. van der Berg",
    "H. Schneider",
    "L. Bianchi",
    "C. Duval",
    "E. Lindqvist",
    "R. Ortega",
    "S. Novak",
    "K. Okafor",
    "T. Hargreaves",
    "P. Janssens",
)

LOCALITIES: dict[str, tuple[str, ...]] = {
    "France": ("Foret de Fontainebleau, Seine-et-Marne", "Col du Lautaret, Hautes-Alpes", "Marais de Brouage"),
    "Belgium": ("Vallee de la Lesse, Namur", "Kalmthoutse Heide, Antwerpen", "Zonienwoud, Brussel"),
    "United Kingdom": ("Wicken Fen, Cambridgeshire", "Box Hill, Surrey", "Ben Lawers, Perthshire"),
    "Germany": ("Schwaebische Alb, Wuerttemberg", "Kaiserstuhl, Baden", "Ruegen, Jasmund"),
    "Netherlands": ("Meijendel, Wassenaar", "Oostvaardersplassen, Flevoland"),
    "Switzerland": ("Val Bregaglia, Graubuenden", "Creux du Van, Neuchatel"),
    "Spain": ("Sierra de Grazalema, Cadiz", "Picos de Europa, Asturias"),
    "Italy": ("Monte Baldo, Verona", "Gran Sasso, Abruzzo"),
}

HABITATS = (
    "Roadside verge",
    "Edge of deciduous wood",
    "Wet meadow",
    "Hedgerow on chalk",
    "River bank, shaded",
    "Dry calcareous grassland",
    "Waste ground near village",
    "Scrub on limestone slope",
)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Record:
    """One specimen's metadata: the Darwin Core terms plus what only the printed label shows."""

    taxon: Taxon
    institution: Institution
    catalog_number: str
    recorded_by: str
    event_date: str  # ISO 8601
    country: str
    locality: str
    habitat: str
    collector_number: int

    def darwin_core(self) -> dict[str, str]:
        return {
            "catalogNumber": self.catalog_number,
            "scientificName": self.taxon.scientific_name,
            "family": self.taxon.family,
            "genus": self.taxon.genus,
            "recordedBy": self.recorded_by,
            "eventDate": self.event_date,
            "country": self.country,
            "locality": self.locality,
            "institutionCode": self.institution.code,
        }

    @property
    def printed_date(self) -> str:
        year, month, day = self.event_date.split("-")
        return f"{int(day)} {MONTHS[int(month) - 1]} {year}"


def catalog_number(institution: Institution, seed: int) -> str:
    """Code plus 8 digits from the seed: unique within one run (consecutive seeds), all digits in Code 128 set C."""
    return f"{institution.code}{seed % 10**8:08d}"


def draw_record(rng: np.random.Generator, seed: int) -> Record:
    """Pick a consistent record: taxon, institution, collector, date and place."""
    taxon = TAXA[int(rng.integers(len(TAXA)))]
    institution = INSTITUTIONS[int(rng.integers(len(INSTITUTIONS)))]
    country = sorted(LOCALITIES)[int(rng.integers(len(LOCALITIES)))]
    places = LOCALITIES[country]
    year = int(rng.integers(1850, 2024))
    month = int(rng.integers(4, 10))  # collecting season
    day = int(rng.integers(1, 29))
    return Record(
        taxon=taxon,
        institution=institution,
        catalog_number=catalog_number(institution, seed),
        recorded_by=COLLECTORS[int(rng.integers(len(COLLECTORS)))],
        event_date=f"{year:04d}-{month:02d}-{day:02d}",
        country=country,
        locality=places[int(rng.integers(len(places)))],
        habitat=HABITATS[int(rng.integers(len(HABITATS)))],
        collector_number=int(rng.integers(1, 9000)),
    )
