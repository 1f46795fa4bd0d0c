/* The shared libraries an ELF object asks the program loader for (DT_NEEDED) and
 * where it tells the loader to look (DT_RUNPATH / DT_RPATH), read from the file's
 * bytes. Pure: no OS calls; every offset is checked against the bytes given, which
 * may be hostile. teepy build uses it so that an extension module added with
 * --include-dir brings the libraries it links. */
#ifndef TEEPY_TRACE_ELF_H
#define TEEPY_TRACE_ELF_H

#include <stddef.h>

#define TP_ELF_MAX_NEEDED 256

struct tp_elf_deps {
	char **needed; /* library names, in the file's order (owned) */
	size_t count;
	char *runpath; /* DT_RUNPATH, else DT_RPATH, or NULL (owned) */
};

/* Fills out from an ELF64 little-endian object of this machine. Returns 0 (count may
 * be 0: a static program, or an object with no dynamic section), -ENOEXEC if data
 * is not such an ELF object, -EBADMSG if it is malformed, -ENOMEM. The caller frees
 * out with tp_elf_deps_free, also after an error. */
int tp_elf_deps(const void *data, size_t size, struct tp_elf_deps *out);

void tp_elf_deps_free(struct tp_elf_deps *deps);

/* The directories of a runpath (':'-separated) with $ORIGIN and ${ORIGIN} replaced
 * by origin_dir; calls fn for each until it returns non-zero, and returns that. */
int tp_elf_runpath_each(const char *runpath, const char *origin_dir,
			int (*fn)(const char *dir, void *ctx), void *ctx);

#endif
