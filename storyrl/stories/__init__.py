"""Stories: what RL and the story evaluation share, below both stages.

- `rubric`: the rubric template (load, check, hash, render) and the reading of the teacher's reply.
- `teacher/`: the teacher (`make_teacher`), its backends, its score cache, and a further judge
  re-scoring a sample of RL runs' stories (`agreement`). It knows nothing of the reward.
- `reward`: the reward of a story from the teacher's scores and the story's length.
- `scoring`: the scorer, the one place where a teacher and the reward are put together.
- `score_file` and `cli`: `storyrl teacher score` (a Parquet of stories through the scorer) and
  `storyrl teacher agree`.
- `sampling`: the student writes stories (batched sampling) and the seeding that repeats them.
- `rows`: scored stories as the `rollouts` and `steps` rows.
- `checks`: the plan-time check of every teacher's weights and rubric template.

Nothing is imported here: planning the workflow loads `checks` and `rubric` only.
"""
