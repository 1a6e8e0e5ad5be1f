#!/usr/bin/env bash
# A device call carries the tracked files of this checkout, and the test fixtures alone are ~67 MiB
# of the 64 MiB it may carry. `slim` takes tests/fixtures out of git's index (the files stay on
# disk) and ignores them, so the call carries the rest; `restore` puts them back. Commit nothing
# while slim: the commit would delete the fixtures. The benches on the device never read them.
#   bench/device/tree.sh slim | restore | status
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude=.git/info/exclude
mark='# fresco device slim (bench/device/tree.sh restore undoes it)'
case "${1:-status}" in
  slim)
    if grep -qxF "$mark" "$exclude" 2>/dev/null; then echo "already slim"; exit 0; fi
    git diff --cached --quiet || { echo "refusing: the index has staged changes; commit or unstage them first" >&2; exit 1; }
    git rm -r -q --cached tests/fixtures
    printf '%s\n/tests/fixtures/\n' "$mark" >>"$exclude"
    echo "slim: tests/fixtures set aside from git's index; run 'bench/device/tree.sh restore' when the device calls are done"
    ;;
  restore)
    if ! grep -qxF "$mark" "$exclude" 2>/dev/null; then echo "not slim"; exit 0; fi
    git reset -q -- tests/fixtures
    sed -i "/^# fresco device slim/{N;d}" "$exclude"
    [ -z "$(git status --porcelain -- tests/fixtures)" ] || { echo "tests/fixtures differs from HEAD after restore:" >&2; git status --short -- tests/fixtures >&2; exit 1; }
    echo "restored: tests/fixtures tracked again"
    ;;
  status)
    if grep -qxF "$mark" "$exclude" 2>/dev/null; then echo "slim (tests/fixtures out of the index)"; else echo "normal"; fi
    ;;
  *) echo "usage: $0 slim | restore | status" >&2; exit 2 ;;
esac
