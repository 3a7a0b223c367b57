"""``plantai``: the command line of PlantAI suite.

Command groups are declared here, in one place; each lives in :mod:`plantai.commands`.
"""

from __future__ import annotations

import click

from herbarium import __version__
from plantai.commands.backends import backends
from plantai.commands.demo import demo
from plantai.commands.export import export
from plantai.commands.info import info
from plantai.commands.models import models
from plantai.commands.predict import predict
from plantai.commands.projects import projects
from plantai.commands.retrain import retrain, train
from plantai.commands.review import review
from plantai.commands.serve import serve
from plantai.commands.specimens import specimens
from plantai.commands.sync import sync
from plantai.commands.synth import synth
from plantai.commands.taxonomy import taxonomy


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="plantai")
def cli() -> None:
    """PlantAI suite: deep-learning models for herbarium specimen scans.

    Detect non-vegetal elements and plant organs, segment the plant and classify traits,
    with Label Studio for expert correction and FiftyOne for exploration.
    """


cli.add_command(backends)
cli.add_command(demo)
cli.add_command(export)
cli.add_command(info)
cli.add_command(models)
cli.add_command(predict)
cli.add_command(projects)
cli.add_command(review)
cli.add_command(retrain)
cli.add_command(train)
cli.add_command(serve)
cli.add_command(sync)
cli.add_command(specimens)
cli.add_command(synth)
cli.add_command(taxonomy)
