#!/bin/sh
# Installs Prometheus and Alertmanager (Debian's packages: prometheus 2.42, prometheus-alertmanager
# 0.25) when any of prometheus, promtool, alertmanager, amtool is missing from PATH. Used by CI
# (.ci/run) on a clean machine; does nothing when the four tools are already there.
#
# The packages' postinst would start the services: a policy-rc.d that answers 101 ("action
# forbidden") is put in place for the install (unless one is already there, which is kept), and
# any prometheus or alertmanager process that appeared during the install is stopped afterwards.
# Quiet on success; on failure, apt's output and one sentence on stderr, exit 1.
set -u

have_all() {
	for tool in prometheus promtool alertmanager amtool; do
		command -v "$tool" >/dev/null 2>&1 || return 1
	done
	return 0
}

fail() {
	echo "install-tools.sh: $*" >&2
	exit 1
}

# Process ids of the packages' services: prometheus and alertmanager (Debian's
# prometheus-alertmanager) running as the packages' user, prometheus. Others' own runs of the
# tools (a test's, a developer's) are never touched.
service_pids() {
	{
		pgrep -u prometheus prometheus
		pgrep -u prometheus alertmanager
	} 2>/dev/null | sort -u
}

# Debian names the Alertmanager binary prometheus-alertmanager: `alertmanager` is made a link to it.
link_alertmanager() {
	command -v alertmanager >/dev/null 2>&1 && return 0
	debian=$(command -v prometheus-alertmanager 2>/dev/null) || return 0
	$SUDO ln -sf "$debian" /usr/local/bin/alertmanager ||
		fail "cannot link /usr/local/bin/alertmanager to $debian"
}

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	SUDO="sudo -n"
else
	SUDO=none
fi

have_all && exit 0
if [ "$SUDO" != none ]; then
	link_alertmanager
	have_all && exit 0
fi

if [ "$SUDO" = none ]; then
	fail "prometheus/alertmanager missing, not root and no password-less sudo: run 'sudo sh $0' once, or install the Debian packages prometheus and prometheus-alertmanager"
fi
command -v apt-get >/dev/null 2>&1 || fail "prometheus/alertmanager missing and no apt-get here: install Prometheus 2.x (prometheus, promtool) and Alertmanager 0.25+ (alertmanager, amtool) by hand"

POLICY=/usr/sbin/policy-rc.d
LOG=$(mktemp "${TMPDIR:-/tmp}/lifeboat-install-tools.XXXXXX") || fail "cannot make a temp file"
OURS=no
before=$(service_pids | tr '\n' ' ')

cleanup() {
	if [ "$OURS" = yes ]; then
		$SUDO rm -f "$POLICY"
	fi
	rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\n# lifeboat install-tools.sh: no service starts during this install\nexit 101\n' |
		$SUDO tee "$POLICY" >/dev/null || fail "cannot write $POLICY"
	OURS=yes
	$SUDO chmod 0755 "$POLICY" || fail "cannot chmod $POLICY"
fi

if ! $SUDO apt-get update -qq >"$LOG" 2>&1; then
	cat "$LOG" >&2
	fail "apt-get update failed (output above)"
fi
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	prometheus prometheus-alertmanager >"$LOG" 2>&1; then
	cat "$LOG" >&2
	fail "apt-get install prometheus prometheus-alertmanager failed (output above)"
fi

# Stop whatever the packages started (only processes that were not running before the install).
new_pids() {
	for pid in $(service_pids); do
		case " $before " in
		*" $pid "*) continue ;;
		esac
		case $(ps -o stat= -p "$pid" 2>/dev/null) in
		Z* | "") continue ;; # gone, or exited and not yet reaped
		esac
		echo "$pid"
	done
}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	for svc in prometheus prometheus-alertmanager; do
		$SUDO systemctl stop "$svc" >/dev/null 2>&1
	done
fi
for pid in $(new_pids); do
	$SUDO kill "$pid" 2>/dev/null
done
tries=0
while [ -n "$(new_pids)" ]; do
	tries=$((tries + 1))
	[ "$tries" -le 10 ] || fail "processes started by the install are still running after 10 s: $(new_pids | tr '\n' ' ')(stop them: kill PID)"
	sleep 1
done

link_alertmanager
have_all || fail "installed prometheus and prometheus-alertmanager, but prometheus, promtool, alertmanager or amtool is still not on PATH ($PATH)"
exit 0
