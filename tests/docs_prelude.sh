# Sourced before every shell block of the docs (tests/test_docs.py): `attnbench` runs as the
# block's mode says. DOCS_MODE (run, dry, fails), DOCS_SERVER (a stand-in answering /health) and
# DOCS_SMOKE_BENCH (small bench sizes) come from the test.

_docs_has() {  # _docs_has PATTERN ARGS...: does an argument match the pattern?
  local want=$1 a
  shift
  for a in "$@"; do [[ $a == $want ]] && return 0; done
  return 1
}

_docs_free_port() {
  python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_docs_ui() {  # start `attnbench ui` on a free port, wait for its URL, stop it
  local out port pid i rc=0
  out=$(mktemp)
  port=$(_docs_free_port)
  command attnbench ui "$@" --port "$port" >"$out" 2>&1 &
  pid=$!
  for i in $(seq 1200); do
    grep -q 'http://' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" || rc=$?
  cat "$out"
  grep -q 'http://' "$out" || { echo "docs test: attnbench ui printed no URL" >&2; return 1; }
  [[ $rc == 0 || $rc == 143 ]] || return "$rc"
}

_docs_dry() {  # run: --cfg job; sweep: --dry-run; a tracking server: the stand-in
  local sub=$1 a
  shift
  local args=()
  for a in "$@"; do
    [[ $a == tracking.uri=http* ]] && a="tracking.uri=$DOCS_SERVER"
    args+=("$a")
  done
  case $sub in
    run) _docs_has --cfg "${args[@]}" || args+=(--cfg job) ;;
    sweep) _docs_has --dry-run "${args[@]}" || args+=(--dry-run) ;;
    *) echo "docs test: 'attnbench $sub' cannot run dry" >&2; return 1 ;;
  esac
  command attnbench "$sub" "${args[@]}"
}

_docs_fails() {  # the command must be refused: exit 2, one error: line, no traceback
  local err rc=0
  err=$(mktemp)
  command attnbench "$@" 2>"$err" || rc=$?
  cat "$err" >&2
  if [[ $rc != 2 ]]; then
    echo "docs test: expected exit 2 from: attnbench $*, got $rc" >&2
    return 1
  fi
  if grep -q Traceback "$err" || [[ $(grep -c '^error:' "$err") != 1 ]]; then
    echo "docs test: expected one error: line and no traceback from: attnbench $*" >&2
    return 1
  fi
}

attnbench() {
  local sub=${1-} smoke
  case $DOCS_MODE in
    dry) _docs_dry "$@"; return ;;
    fails) _docs_fails "$@"; return ;;
  esac
  case $sub in
    run | sweep)
      if _docs_has 'trainer=*' "$@" || _docs_has --cfg "$@" || _docs_has --info "$@" \
        || _docs_has --dry-run "$@"; then
        command attnbench "$@"
      else
        command attnbench "$@" trainer=smoke
      fi
      ;;
    bench)
      read -ra smoke <<<"$DOCS_SMOKE_BENCH"
      command attnbench "$@" "${smoke[@]}"
      ;;
    ui) shift; _docs_ui "$@" ;;
    *) command attnbench "$@" ;;
  esac
}
