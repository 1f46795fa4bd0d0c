/* The seccomp policy: one table of system calls and what the service gets for each. */
#ifndef TEEPY_SANDBOX_SECCOMP_H
#define TEEPY_SANDBOX_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/audit.h>

/* The architecture every hand-written filter checks first (limits.c, reaper.c). */
#if defined(__x86_64__)
#define TP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH_*"
#endif

enum tp_seccomp_stage {
	TP_SECCOMP_STAGE1, /* before the interpreter starts: the policy, but execve allowed */
	TP_SECCOMP_STAGE2, /* installed by _teepy: the full policy, no execve */
	/* a zygote's stage 2 (docs/zygote.md): stage 2 with fork and process clones but
	 * no exec, and seccomp(2) SECCOMP_SET_MODE_FILTER without flags, which each child
	 * needs to add its own filter (a filter only takes away) */
	TP_SECCOMP_STAGE2_ZYGOTE,
};

/* What a policy adds to the base one (tp_seccomp_build's policy, bits) */
enum {
	TP_SECCOMP_PROCESSES = 1, /* `processes = "manifest"`: fork, vfork, exec */
	TP_SECCOMP_LISTEN = 2,	  /* `network = "listen"`: accept on the handed socket */
	TP_SECCOMP_POLICIES = 4,  /* how many combinations there are */
};

/* Where a service with a handed socket has it: the first handed descriptor
 * (tp_sandbox_config.handed_fds) */
#define TP_SECCOMP_LISTEN_FD 4

struct tp_bpf {
	void *insns; /* struct sock_filter[], malloc'd, owned by the caller */
	size_t size; /* bytes */
};

/* Both stages for each policy (indexed by its TP_SECCOMP_* bits) and a zygote's
 * stage 2, compiled at build time by tools/seccomp_gen (seccomp_bpf.c). The
 * processes policy is SGXPy's `processes = "manifest"`: fork, vfork, process clone
 * and execve allowed (Landlock limits exec to the sealed root). */
extern const struct tp_bpf tp_seccomp_stage1_of[TP_SECCOMP_POLICIES];
extern const struct tp_bpf tp_seccomp_stage2_of[TP_SECCOMP_POLICIES];
extern const struct tp_bpf tp_seccomp_stage2_zygote;

/* Builds the program of a stage with libseccomp. Returns 0 or -errno. */
int tp_seccomp_build(enum tp_seccomp_stage stage, unsigned policy, struct tp_bpf *out);

/* Installs a built program on the calling thread (no_new_privs must be set). */
int tp_seccomp_install(const struct tp_bpf *prog);

/* Counts for --print-config. */
size_t tp_seccomp_rule_count(void);

#endif
