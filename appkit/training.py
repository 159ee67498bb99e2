"""The Train page's words and widget state: what to do about a problem said with the page's controls (the library
says it with command-line flags), and widgets whose default follows another choice (the dataset)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Hashable, Iterator, Mapping

import streamlit as st

from appkit.widgets import readable_errors
from interpgrad.errors import InterpgradError, Remedy

__all__ = ["ON_THE_PAGE", "follow_default", "on_the_page", "status_message", "train_errors"]

# Every remedy of interpgrad.errors.REMEDIES, said with the Train page's controls (labels as the page shows them).
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
def train_errors(what: str) -> Iterator[None]:
    """``readable_errors``, with what to do said in the page's words when the error carries a remedy."""
    with readable_errors(what):
        try:
            yield
        except InterpgradError as error:
            if error.remedy is None:
                raise
            st.error(f"{what}: {on_the_page(error.problem, error.remedy)}")


def follow_default(key: str, context: Hashable, default: Any) -> None:
    """Call before drawing the widget ``key`` (drawn without a value of its own): when ``context`` (the dataset)
    changes, the widget takes the value it had the last time that context was chosen, or ``default`` the first time,
    so a default follows the context unless the user changed it there."""
    remembered: dict[Hashable, Any] = st.session_state.setdefault(f"{key}.by_context", {})
    previous = st.session_state.get(f"{key}.context")
    if previous is not None and key in st.session_state:
        remembered[previous] = st.session_state[key]
    if previous != context or key not in st.session_state:
        st.session_state[key] = remembered.get(context, default)
    st.session_state[f"{key}.context"] = context
