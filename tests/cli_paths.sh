#!/usr/bin/env bash
# cli_paths.sh: what --out does to the file system. A regular file is replaced
# atomically and keeps its mode; a new file honours the umask; a symbolic link
# is followed and its target replaced; a FIFO is written through, not replaced;
# a read-only file (also for root) and a name too long are refused before any
# work; a 254-byte name works; a temporary left by a killed run is kept (bafu
# deletes only what it created in the run); every catchable terminating signal
# removes the temporary file; writes to stdout are checked, with one message;
# a closed stderr keeps messages out of the tables; a pipe reached through
# /dev/stdout or /dev/fd/N is written through; control characters in names are
# escaped in the '#' lines.
set -u
BAFU=$(realpath "${1:?usage: cli_paths.sh path/to/bafu}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(mc --width 8 --depth 2 --seeds 2 --quiet)
long=(mc --width 512 --depth 64 --seeds 4000 --quiet) # many seconds
mode() { stat -c %a "$1"; }
cd "$dir" || exit 1

# modes: an existing file keeps its mode, a new file gets 0666 minus the umask
echo old >m600.dat && chmod 600 m600.dat
"$BAFU" "${small[@]}" --out m600.dat && [[ $(mode m600.dat) == 600 ]] && grep -q '^layer' m600.dat && ok || bad "mode 600 not kept ($(mode m600.dat))"
echo old >m640.dat && chmod 640 m640.dat
"$BAFU" "${small[@]}" --out m640.dat && [[ $(mode m640.dat) == 640 ]] && ok || bad "mode 640 not kept ($(mode m640.dat))"
(umask 077 && "$BAFU" "${small[@]}" --out u077.dat) && [[ $(mode u077.dat) == 600 ]] && ok || bad "umask 077 ignored ($(mode u077.dat))"
(umask 022 && "$BAFU" "${small[@]}" --out u022.dat) && [[ $(mode u022.dat) == 644 ]] && ok || bad "umask 022 ignored ($(mode u022.dat))"

# a symbolic link is followed: the target gets the table, the link stays a link
echo old >target.dat && ln -s target.dat link.dat
"$BAFU" "${small[@]}" --out link.dat
[[ -L link.dat && $(readlink link.dat) == target.dat ]] && grep -q '^layer' target.dat && ok || bad "symlink replaced or target stale"
mkdir sub && ln -s sub/newtarget.dat dangling.dat # a link to a file not yet there: created at the target
"$BAFU" "${small[@]}" --out dangling.dat
[[ -L dangling.dat && -f sub/newtarget.dat ]] && ok || bad "dangling symlink not followed"
ln -s loop2 loop1 && ln -s loop1 loop2
"$BAFU" "${small[@]}" --out loop1 2>err; [[ $? -ne 0 && -L loop1 && -L loop2 ]] && grep -q 'symbolic links' err && ok || bad "link loop"

# a FIFO is written through (a reader gets the table) and stays a FIFO
mkfifo fifo
timeout 20 cat fifo >fifo.out &
reader=$!
timeout 20 "$BAFU" "${small[@]}" --out fifo; rc=$?
wait $reader
[[ $rc -eq 0 && -p fifo ]] && grep -q '^layer' fifo.out && ok || bad "FIFO replaced or not written (rc $rc)"
ls | grep -q 'fifo\.tmp' && bad "FIFO left a temporary" || ok

# a read-only file is refused before any work and kept, also when running as root
echo keep >ro.dat && chmod 444 ro.dat
"$BAFU" "${long[@]}" --out ro.dat 2>err; rc=$?
[[ $rc -eq 2 && $(cat ro.dat) == keep && $(wc -l <err) -eq 1 ]] && ok || bad "read-only file: rc $rc, $(cat err)"

# every name the file system accepts: 254 bytes, and a name with a newline
name=$(printf 'n%.0s' $(seq 254))
"$BAFU" "${small[@]}" --out "$name" && [[ -s $name ]] && ok || bad "254-byte name refused"
nl=$'new\nline.dat'
"$BAFU" "${small[@]}" --out "$nl" && [[ -s $nl ]] && ok || bad "name with a newline refused"
# the '#' lines stay comments: every line is a comment, the header, or a row of numbers
if awk 'NR > 0 && !/^#/ && !/^layer / && !/^[0-9]/ {bad = 1} END {exit bad}' "$nl"; then ok; else bad "newline in a name broke the '#' lines"; fi
grep -q 'new\\nline.dat' "$nl" && ok || bad "newline not escaped as \\n"

# a name longer than the directory allows is refused before any work (exit 2)
"$BAFU" "${long[@]}" --out "${name}xy" 2>err; rc=$?
[[ $rc -eq 2 && $(wc -l <err) -eq 1 && -z $(ls | grep '\.tmp\.') ]] && ok || bad "256-byte name: rc $rc, $(cat err)"

# temporaries: a killed run leaves one, and a later run with the same output
# leaves it alone (bafu deletes only what it created in the same run), as it
# does files that merely look like temporaries
"$BAFU" "${long[@]}" --out k.dat &
pid=$!
for _ in $(seq 100); do ls | grep -q '^k\.dat\.tmp\.' && break; sleep 0.05; done
kill -KILL $pid; wait $pid 2>/dev/null
stale=$(ls | grep "^k\.dat\.tmp\.$pid\.")
[[ -n $stale ]] && ok || bad "no temporary after SIGKILL"
echo keep >k.dat.tmp.99999.backup && echo keep >k.dat.tmp.4000000.zzzzzz
"$BAFU" "${small[@]}" --out k.dat
[[ -e $stale && -e k.dat.tmp.99999.backup && -e k.dat.tmp.4000000.zzzzzz && -s k.dat ]] && ok || bad "temporaries deleted: $(ls | grep '^k\.dat\.tmp' | tr '\n' ' ')"
rm -f "$stale"

# every catchable terminating signal removes the temporary and keeps the old table
"$BAFU" "${small[@]}" --out s.dat
before=$(cksum <s.dat)
set -m # background jobs keep SIGINT and SIGQUIT (a shell without job control ignores them)
for sig in INT TERM HUP QUIT USR1 USR2 ALRM XCPU VTALRM PROF PIPE; do
  "$BAFU" "${long[@]}" --out s.dat &
  pid=$!
  for _ in $(seq 100); do ls | grep -q "^s\.dat\.tmp\.$pid\." && break; sleep 0.05; done
  kill -s "$sig" $pid
  wait $pid
  rc=$?
  if [[ $rc -ne 0 && -z $(ls | grep '^s\.dat\.tmp') && $(cksum <s.dat) == "$before" ]]; then ok; else
    bad "SIG$sig: rc $rc, left: $(ls | grep '^s\.dat\.tmp' | tr '\n' ' ')"; fi
done
set +m

# writes to stdout are checked
if [[ -w /dev/full ]]; then
  "$BAFU" --help >/dev/full 2>err; [[ $? -eq 1 ]] && grep -q 'stdout' err && ok || bad "--help > /dev/full exited 0"
  "$BAFU" mc --help >/dev/full 2>err; [[ $? -eq 1 ]] && ok || bad "mc --help > /dev/full exited 0"
  "$BAFU" "${small[@]}" >/dev/full 2>err; [[ $? -eq 1 ]] && ok || bad "mc > /dev/full exited 0"
fi
"$BAFU" "${small[@]}" --out c.dat >&- && ok || bad "a closed stdout that is never written is no error"
if [[ -w /dev/full ]]; then # one line, not two
  "$BAFU" "${small[@]}" >/dev/full 2>err; [[ $(wc -l <err) -eq 1 ]] && ok || bad "stdout error: $(cat err)"
fi
"$BAFU" "${small[@]}" >&- 2>err; rc=$?
[[ $rc -eq 1 && $(wc -l <err) -eq 1 ]] && ok || bad "table due on a closed stdout: rc $rc, $(cat err)"

# a closed stderr: the messages must not land in the files the run opens
"$BAFU" train --data teacher --width 8 --depth 2 --epochs 1 --train-size 256 --test-size 64 --batch 16 --quiet \
  --lr 1e8 --out e2.dat 2>&-; rc=$?
[[ $rc -eq 1 ]] && ! grep -q 'bafu' <(grep -v '^#' e2.dat 2>/dev/null) && ok || bad "closed stderr: rc $rc, $(head -2 e2.dat)"

# a pipe reached through /dev/stdout or /dev/fd/N is written through
out=$("$BAFU" "${small[@]}" --out /dev/stdout | grep -c '^[0-9]'); rc=${PIPESTATUS[0]}
[[ $rc -eq 0 && $out -gt 0 ]] && ok || bad "--out /dev/stdout to a pipe: rc $rc"
"$BAFU" "${small[@]}" --out >(grep -c '^[0-9]' >fd.out); rc=$?
sleep 0.5
[[ $rc -eq 0 && $(cat fd.out) -gt 0 ]] && ok || bad "--out /dev/fd/N: rc $rc"

echo "cli_paths: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
