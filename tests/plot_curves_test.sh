#!/usr/bin/env bash
# scripts/plot_curves.py: `prelude metrics` CSV in, an SVG whose curves sit where
# hand computation puts them; bad input refused with a message naming the file.
#   plot_curves_test.sh SOURCE_DIR
set -uo pipefail
SRC=$1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
header='event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second'
printf '%s\nstep,1,50,2.0,0.1,0.01,,,,,900\nstep,1,100,1.0,0.5,0.01,,,,,900\nepoch,1,100,,,0.01,1.2,0.5,1.1,0.6,\n' "$header" > "$work/a.csv"
printf '%s\nstep,1,50,2.5,0.1,0.01,,,,,900\nstep,1,100,2.5,0.1,0.01,,,,,900\n' "$header" > "$work/b.csv"
python3 "$SRC/scripts/plot_curves.py" "$work/fig.svg" --dash B --ymax 2.5 "A run=$work/a.csv" "B run=$work/b.csv" || exit 1
python3 - "$work/fig.svg" <<'PY' || exit 1
import sys, xml.dom.minidom
svg = xml.dom.minidom.parse(sys.argv[1])
lines = svg.getElementsByTagName("polyline")
assert len(lines) == 2, len(lines)
# Plot area: x from 60 to 720-200=520 over steps 0..100, y from 40 to 420-50=370 over loss 2.5..0.
a = [tuple(map(float, p.split(","))) for p in lines[0].getAttribute("points").split()]
want = [(60 + 460 * 0.5, 40 + 330 * (1 - 2.0 / 2.5)), (520.0, 40 + 330 * (1 - 1.0 / 2.5))]  # (290, 106), (520, 238)
assert all(abs(x - wx) < 0.06 and abs(y - wy) < 0.06 for (x, y), (wx, wy) in zip(a, want)) and len(a) == 2, a
assert not lines[0].getAttribute("stroke-dasharray") and lines[1].getAttribute("stroke-dasharray"), "B dashed"
texts = [t.firstChild.data for t in svg.getElementsByTagName("text") if t.firstChild]
assert "A run" in texts and "B run" in texts, texts
print("ok svg")
PY
printf '%s\n' "$header" > "$work/empty.csv"
if python3 "$SRC/scripts/plot_curves.py" "$work/x.svg" "E=$work/empty.csv" 2> "$work/err"; then
  echo "FAIL: a CSV without step rows was accepted"; exit 1
fi
grep -q "empty.csv: no step rows" "$work/err" || { echo "FAIL: message"; cat "$work/err"; exit 1; }
echo "ok refusal"
