"""neurocompile's Lava Processes (``process.py``) and their fixed_pt ProcessModels (``models.py``).

Kept in their own package because Lava's compiler executes every module in a Process's directory when it
looks for ProcessModels. Importing this package imports Lava.
"""
