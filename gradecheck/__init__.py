"""Hidden tests of the course's nbgrader assignments (instructor-only; never released).

Each assignment has a module with one check per graded function, e.g.
``gradecheck.lstm.forget_gate(forget_gate)``: it calls the learner's function on seeded cases,
compares with :mod:`rnn_ref`, and fails with a message that names the function, the case and,
when it recognises one, the mistake. The package lives outside ``solutions/`` because nbgrader
copies every other file of an assignment's source folder to learners and into feedback.
"""
