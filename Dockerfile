# The default dockersh session image, built by install.sh as dockersh-session:latest.
# Every session of a user runs in their own long-lived container of this image; dockersh adds
# the user's passwd/group entries and home at run time, and runs it with `docker run --init`.
# install.sh builds it with no context (`docker build - <Dockerfile`): a COPY needs a change there.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="dockersh-session" \
      org.opencontainers.image.description="Default image for dockersh user sessions" \
      org.opencontainers.image.licenses="Apache-2.0"

# C.UTF-8 is built into Debian's libc; the UTF-8 locales clients commonly send (sshd's AcceptEnv
# LANG LC_*) are generated below (then the locales package goes, its sources with it: 17 MB;
# its removal would delete the archive too, so the archive is kept aside). The label says which the image has: dockersh gives a session
# that asks for another one C.UTF-8 instead, so no command says "cannot change locale".
ENV LANG=C.UTF-8
ARG LOCALES="en_US.UTF-8 en_GB.UTF-8 en_CA.UTF-8 en_AU.UTF-8 en_IE.UTF-8 en_IN.UTF-8 \
en_NZ.UTF-8 de_DE.UTF-8 de_AT.UTF-8 de_CH.UTF-8 fr_FR.UTF-8 fr_BE.UTF-8 fr_CA.UTF-8 fr_CH.UTF-8 \
es_ES.UTF-8 es_MX.UTF-8 it_IT.UTF-8 nl_NL.UTF-8 pt_BR.UTF-8 pt_PT.UTF-8 ru_RU.UTF-8 uk_UA.UTF-8 \
pl_PL.UTF-8 cs_CZ.UTF-8 sv_SE.UTF-8 da_DK.UTF-8 nb_NO.UTF-8 fi_FI.UTF-8 tr_TR.UTF-8 el_GR.UTF-8 \
hu_HU.UTF-8 ja_JP.UTF-8 ko_KR.UTF-8 zh_CN.UTF-8 zh_TW.UTF-8 he_IL.UTF-8"

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
        openssh-sftp-server openssh-client rsync python3 locales; \
    for l in $LOCALES; do echo "$l UTF-8"; done >/etc/locale.gen; \
    locale-gen; \
    mv /usr/lib/locale/locale-archive /root/; \
    apt-get purge -y locales; \
    mv /root/locale-archive /usr/lib/locale/; \
    test "$(locale -a | grep -c '\.utf8$')" -gt "$(echo $LOCALES | wc -w)"; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    find / -xdev -type f -perm /6000 -exec chmod ug-s {} +; \
    test -x /usr/lib/openssh/sftp-server

# The locales generated above (dockersh compares names as glibc does: en_US.UTF-8 is en_US.utf8).
LABEL dockersh.locales="C.UTF-8 $LOCALES"

CMD ["sleep", "infinity"]
