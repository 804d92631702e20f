# The default dockersh session image, built by install.sh as dockersh-session:latest.
# Every session of a user runs in their own long-lived container of this image; dockersh adds
# the user's passwd/group entries and home at run time, and runs it with `docker run --init`.
# install.sh builds it with no context (`docker build - <Dockerfile`): a COPY needs a change there.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="dockersh-session" \
      org.opencontainers.image.description="Default image for dockersh user sessions" \
      org.opencontainers.image.licenses="Apache-2.0"

# C.UTF-8 is built into Debian's libc: no locales package needed.
ENV LANG=C.UTF-8

# openssh-sftp-server: sshd's `Subsystem sftp /usr/lib/openssh/sftp-server` runs that path here.
# openssh-client: `scp -t`, which OpenSSH < 9 clients and `scp -O` run on the far side.
# rsync: `rsync -e ssh` runs `rsync --server` on the far side.
# tzdata: a TZ that reaches the session (sudo keeps it) names a zone. No sshd, no sudo in here.
# python3: what tunnelled tools (Jupyter-style servers, `python3 -m http.server`) need.
# The set-uid/set-gid bits go: nothing in a session needs to gain privilege.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        bash coreutils procps iproute2 less vim-tiny tmux git ca-certificates tzdata \
        openssh-sftp-server openssh-client rsync python3; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    find / -xdev -type f -perm /6000 -exec chmod ug-s {} +; \
    test -x /usr/lib/openssh/sftp-server

CMD ["sleep", "infinity"]
