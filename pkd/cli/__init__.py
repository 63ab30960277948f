"""The console commands: `pkd` (`main`), `pkd-preset` (`presets`), `pkd-sweep-table`
(`sweep_table`) and `pkd-teacher-study` (`teacher_study`).
"""
