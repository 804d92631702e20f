# dockersh-test/systemd-host: a systemd-booted Debian 12 as production hosts are (systemd PID 1,
# the stock /etc/pam.d/sshd with pam_env and, through common-session, pam_systemd), for the user
# manager test in tests/e2e/test_host_chain.py on machines where systemd is not PID 1.
# Built FROM the debian:bookworm-slim that tests/images/make-debian-base.sh makes.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends systemd systemd-sysv dbus libpam-systemd \
        openssh-server openssh-client procps \
    && systemctl enable ssh \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
