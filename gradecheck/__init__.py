"""Hidden tests of the course's nbgrader assignments (instructor-only; never released).

Each assignment has a module with one check per graded function, e.g.
``gradecheck.lstm.forget_gate(forget_gate, globals())``: it calls the learner's function on
seeded cases, compares with :mod:`rnn_ref`, and fails with a message that names the function,
the case and, when it recognises one, the mistake. The package lives outside ``solutions/``
because nbgrader copies every other file of an assignment's source folder to learners and into
feedback.

What the assignment modules share: :mod:`~gradecheck.core` calls the learner's function and
compares; :mod:`~gradecheck.cases` makes the seeded inputs; :mod:`~gradecheck.mistakes` is the
catalogue of known mistakes; :mod:`~gradecheck.simple_rnn` (``rnn``, ``brnn``) and
:mod:`~gradecheck.gated` (``lstm``, ``gru``) are the scaffolds of checks that several notebooks
have; :mod:`~gradecheck.substitution` puts correct versions of the notebook's other graded
functions in place while one is graded (each function is scored alone). Keras's weight layouts
and tolerance come from :mod:`rnn_ref.keras_weights`.
"""
