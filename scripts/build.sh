#!/usr/bin/env bash
# Build the course website into _build/html, offline, with warnings as errors.
# Idempotent: notebook outputs are cached (_build/.jupyter_cache), so a rebuild with nothing
# changed runs no code and rewrites nothing. Extra arguments go to `jupyter-book build`, e.g.
# `bash scripts/build.sh --all` re-reads every page (a clean check of all warnings); with
# `--path-output DIR` the site, and the chapters' cache, go to DIR/_build instead.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
source scripts/env.sh

# The Colab/Binder notebooks in notebooks/ are generated from the chapters; keep them in step.
python scripts/sync_chapter_notebooks.py

# The build's output folder (--path-output, as jupyter-book takes it; this folder by default):
# the chapters' runs below go into the jupyter-cache there, which the build reads.
output=.
previous=
for arg in "$@"; do
  [ "$previous" != --path-output ] || output=$arg
  case $arg in --path-output=*) output=${arg#--path-output=} ;; esac
  previous=$arg
done

# jupyter-cache keys a chapter by its own cells only, not by the Python modules its cells import
# (book/*.py, rnn_ref): when one of those changes, every chapter runs again.
modules_digest=$(cat book/*.py rnn_ref/*.py | sha256sum | cut -d' ' -f1)
modules_stamp=$output/_build/.chapter-modules.sha256
if [ ! -f "$modules_stamp" ] || [ "$(cat "$modules_stamp")" != "$modules_digest" ]; then
  rm -rf "$output/_build/.jupyter_cache"
fi

# The chapters run a few at a time (one per core) into the build's jupyter-cache, each as its
# notebook in notebooks/ runs alone, so the build takes each from the cache instead of running
# them one after the other. A chapter that raises is left out of the cache: the build runs it
# again and fails with its traceback; one that raises only alone fails the build at the end.
alone=0
python scripts/execute_chapters.py --path-output "$output" || alone=$?
jupyter-book build . --warningiserror --nitpick --keep-going "$@"
# myst-nb writes the notebook of a page it takes from the cache (the page's download) without
# its outputs; this gives them back.
python scripts/execute_chapters.py --path-output "$output" --after-build
if [ "$alone" -ne 0 ]; then
  echo "A chapter's notebook does not run alone (see execute_chapters.py's report above)." >&2
  exit "$alone"
fi

mkdir -p "$output/_build"
echo "$modules_digest" > "$modules_stamp"

echo
echo "The website is in $(cd "$output" && pwd)/_build/html/index.html"
echo "Serve it with:  python3 -m http.server -d $output/_build/html 8000   (then open http://127.0.0.1:8000/)"
