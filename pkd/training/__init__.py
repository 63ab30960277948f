"""One training job (teacher or student): `train` runs it through the Trainer with resume and
atomic saving, `distill` plans and trains one student from params (the distill stage's
work), `resume_key` names the run a leftover checkpoint belongs to.
"""
