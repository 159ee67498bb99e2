"""Widgets built from the library's declarations, and the app's way of showing errors."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import streamlit as st

from interpgrad.errors import InterpgradError, Remedy
from interpgrad.params import Param, check_declarations

__all__ = ["JOB_BADGES", "ON_THE_PAGE", "drop_missing_choices", "on_the_page", "param_widgets", "readable_errors", "status_message"]


def _log_steps(param: Param) -> list[float]:
    low = param.low if param.low and param.low > 0 else abs(param.default) / 1000 or 1e-6
    high = param.high if param.high else abs(param.default) * 1000 or 1.0
    values = set()
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2.5, 5, 7.5):
            value = mantissa * 10**exponent
            if low <= value <= high:
                values.add(float(f"{value:.6g}"))
    values.add(float(param.default))
    return sorted(values)


def param_widget(param: Param, key: str, container: Any = st) -> Any:
    """One widget for a declared parameter: selectbox for choices, checkbox for bool, a log-scale select slider or
    a number input for numbers (bounded by the declared range)."""
    label, help_text = param.name.replace("_", " "), param.help
    if param.choices:
        return container.selectbox(label, param.choices, index=list(param.choices).index(param.default), key=key, help=help_text, persist_state="session")
    if param.type is bool:
        return container.checkbox(label, value=bool(param.default), key=key, help=help_text, persist_state="session")
    if param.type is float and param.log and param.default > 0:
        return container.select_slider(label, options=_log_steps(param), value=float(param.default), key=key,
                                       help=help_text, format_func=lambda v: f"{v:g}")
    if param.type is int:
        return container.number_input(label, value=int(param.default), step=1, key=key, help=help_text, persist_state="session",
                                      min_value=int(param.low) if param.low is not None else None,
                                      max_value=int(param.high) if param.high is not None else None)
    if param.type is float:
        return container.number_input(label, value=float(param.default), key=key, help=help_text, persist_state="session", format="%g",
                                      min_value=float(param.low) if param.low is not None else None,
                                      max_value=float(param.high) if param.high is not None else None)
    return container.text_input(label, value=str(param.default), key=key, help=help_text, persist_state="session")


def param_widgets(params: Sequence[Param], key_prefix: str, container: Any = st, columns: int = 2) -> dict[str, Any]:
    """Widgets for the declared parameters that apply, laid out in ``columns``; returns {name: value} of those only.

    A parameter with a condition (``Param.when``) gets its widget only while the condition holds for the widgets
    drawn before it (its controlling parameter is declared earlier), so a hidden widget's kept value is never sent:
    the library resolves the parameters not returned to their defaults."""
    if not params:
        return {}
    check_declarations(params)
    slots = container.columns(columns)
    values: dict[str, Any] = {}
    for param in params:
        if param.applies(values):
            values[param.name] = param_widget(param, f"{key_prefix}.{param.name}", slots[len(values) % columns])
    return values


def drop_missing_choices(key: str, options: Sequence[Any]) -> None:
    """Before a multiselect is drawn: remove from its kept value the choices it no longer offers (a deleted run)."""
    if key in st.session_state:
        kept = [value for value in st.session_state[key] if value in options]
        if kept != list(st.session_state[key]):
            st.session_state[key] = kept


# A background job's state (a training run, an evaluation) as a coloured badge: Material icons, which every browser
# draws (emoji render as empty boxes where the browser has no emoji font).
JOB_BADGES: dict[str, str] = {
    "running": ":blue-badge[:material/progress_activity: running]",
    "finished": ":green-badge[:material/check_circle: finished]",
    "failed": ":red-badge[:material/error: failed]",
    "stopped": ":orange-badge[:material/pause_circle: stopped]",
    "interrupted": ":orange-badge[:material/warning: interrupted]",
    "new": ":gray-badge[:material/hourglass_empty: starting]",
}

# Every remedy of interpgrad.errors.REMEDIES, said with the app's controls (the Train and Evaluate pages' labels).
ON_THE_PAGE: dict[str, str] = {
    "resume": "continue with the Resume button",
    "resume_or_rename": "continue it with its Resume button, or choose another Run name",
    "set_data_root": "fill in the Data folder",
    "download_or_set_data_root": "tick “Download CIFAR into it” to fetch it, or set the Data folder to the folder "
                                 "that contains {folder}",
    "gentler_training": "start a new run with a lower Learning rate or lam, or with Gradient clipping (under "
                        "Optimisation)",
}


def on_the_page(problem: str, remedy: Remedy | None) -> str:
    """``problem`` followed by what to do about it in the page's words."""
    if remedy is None or remedy.action not in ON_THE_PAGE:
        return problem if remedy is None else f"{problem}; {remedy.command_line}"
    return f"{problem}; {ON_THE_PAGE[remedy.action].format(**remedy.details)}"


def status_message(status: Mapping[str, Any]) -> str | None:
    """Why a run stopped or failed, in the page's words (its status keeps the problem and the remedy apart from
    the command line's wording; an older status has only the reason)."""
    remedy = Remedy.from_dict(status.get("remedy"))
    if remedy is not None and isinstance(status.get("problem"), str):
        return on_the_page(status["problem"], remedy)
    reason = status.get("reason")
    return str(reason) if reason else None


@contextmanager
def readable_errors(what: str) -> Iterator[None]:
    """Show an InterpgradError (bad input) as a readable message instead of a traceback; anything else as an error
    with its type, and the page keeps working."""
    try:
        yield
    except InterpgradError as error:  # what to do about it said with the page's controls, not the CLI's flags
        st.error(f"{what}: {on_the_page(error.problem, error.remedy)}")
    except Exception as error:  # a bug or an environment problem: still no traceback for the user
        st.error(f"{what} failed unexpectedly ({type(error).__name__}: {error}). Please report it.")
