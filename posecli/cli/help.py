"""Help pages that read as plain text: placeholders in capitals, no type names.

Typer's plain-text help shows a required argument as ``{input}`` and values as
``<str>``, ``<list[str]>`` or ``<int range>``. Commands built with
``PlainHelpCommand`` show ``INPUT``, ``IMAGE...`` and each option's metavar
(``--out FILE``, ``--batch-size N``) instead. Options declare their metavar;
one that does not gets ``VALUE``.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

#: The placeholder of an option that declares no metavar.
FALLBACK_METAVAR = "VALUE"


class PlainHelpCommand(TyperCommand):
    """A Typer command whose usage line and help list plain placeholders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if (param.param_type_name == "option" and not getattr(param, "is_flag", False)
                    and param.metavar is None):
                param.metavar = FALLBACK_METAVAR

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if param.param_type_name == "argument":
                name = argument_placeholder(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments = [(argument_placeholder(p), p.help or "")
                     for p in self.get_params(ctx) if p.param_type_name == "argument"]
        options = [record for p in self.get_params(ctx) if p.param_type_name == "option"
                   and (record := p.get_help_record(ctx)) is not None]
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def argument_placeholder(param: Any) -> str:
    """``INPUT`` (its metavar, else its name in capitals), ``...`` when it takes many."""
    name = param.metavar or param.name.upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name
