"""Many runs as tables: a row per run (``unitb.runs``), every point (``unitb.scalars``), SQL over
both (``unitb query``) and a comparison page (``unitb report``), from an index kept beside them."""
