"""The event study: has the pattern really preceded pullbacks?

Plain inputs — bars (open time, close, high, low) and per-bar event booleans, or a function from
a parameter set to those booleans plus a grid — so it works with any detector. Start at
:func:`run_study` / :func:`study_events`; :class:`StudyResult` has the verdict and the JSON.
"""

from tapewatch.study.events import collapse
from tapewatch.study.forward import ForwardTable, PriceBars, compute_forward
from tapewatch.study.result import StudyResult
from tapewatch.study.run import SIDES, Study, TrackRecord, TrackRecords, run_study, study_events, track_record
from tapewatch.study.settings import StudySettings, load_settings
from tapewatch.study.sweep import EventFn, grid_from_dict, load_grid

__all__ = [
    "SIDES", "EventFn", "ForwardTable", "PriceBars", "Study", "StudyResult", "StudySettings", "TrackRecord",
    "TrackRecords",
    "collapse", "compute_forward", "grid_from_dict", "load_grid", "load_settings", "run_study", "study_events",
    "track_record",
]
