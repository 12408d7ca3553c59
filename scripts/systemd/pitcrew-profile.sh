# /etc/profile.d/pitcrew.sh: lets the `pitcrew` CLI of a login shell reach the suite run by
# systemd, whose ipc sockets are in /run/pitcrew instead of /tmp.
export PITCREW_IPC_DIR=/run/pitcrew
export PATH="/opt/pitcrew/target/release:$PATH"
