"""Looking at stored studies: an offline HTML report, a flat trials table, the dashboard note.

* :mod:`analysis.report`: ``python -m analysis.report --study NAME`` writes one self-contained
  HTML file (plotly.js inlined) plus the trials table as CSV (and Parquet with pyarrow).
* :mod:`analysis.tables`: the trials of a study as a pandas DataFrame with user attributes
  flattened into dotted columns (``user_attrs.config.agent.policy_lr``).
* :mod:`analysis.figures`: the plotly figures of the report.
* :mod:`analysis.dashboard`: the ``optuna-dashboard`` command for a study and its markdown note.
"""
