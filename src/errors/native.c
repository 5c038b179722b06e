/*
 * errors/native: stack walking and module listing (see native.h).
 */
#include "native.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "platform.h" /* PH_HAVE_DL_ITERATE_PHDR: ELF images (not macOS) */

#if PH_HAVE_DL_ITERATE_PHDR
#include <elf.h>
#include <link.h>
#ifndef ElfW /* glibc's; the BSDs spell it out */
#if UINTPTR_MAX > 0xffffffffu
#define ElfW(t) Elf64_##t
#else
#define ElfW(t) Elf32_##t
#endif
#endif
#ifndef NT_GNU_BUILD_ID
#define NT_GNU_BUILD_ID 3
#endif
#endif

#if defined(__GLIBC__)
#include <execinfo.h>
#else
#include <unwind.h>
#endif

#if !defined(__GLIBC__)
typedef struct {
    uintptr_t *pcs;
    size_t max, n, skip;
} unwind_state_t;

static _Unwind_Reason_Code unwind_one(struct _Unwind_Context *ctx, void *arg) {
    unwind_state_t *s = arg;
    uintptr_t pc = (uintptr_t)_Unwind_GetIP(ctx);
    if (!pc) return _URC_END_OF_STACK;
    if (s->skip) {
        s->skip--;
        return _URC_NO_REASON;
    }
    if (s->n >= s->max) return _URC_END_OF_STACK;
    s->pcs[s->n++] = pc;
    return _URC_NO_REASON;
}
#endif

__attribute__((noinline)) size_t posthog__native_stack(uintptr_t *pcs, size_t max, size_t skip) {
    skip += 1; /* this function */
#if defined(__GLIBC__)
    void *buf[PH_MAX_FRAMES + 32];
    int want = (int)PH_MIN(max + skip, sizeof buf / sizeof buf[0]);
    int n = backtrace(buf, want);
    size_t out = 0;
    for (int i = (int)skip; i < n && out < max; i++) pcs[out++] = (uintptr_t)buf[i];
    return out;
#else
    unwind_state_t s = {pcs, max, 0, skip};
    _Unwind_Backtrace(unwind_one, &s);
    return s.n;
#endif
}

/* ---------------------------------------------------------------- modules */

#if PH_HAVE_DL_ITERATE_PHDR

typedef struct {
    ph_modules_t *out;
    size_t cap;
    int failed;
} collect_t;

static void find_build_id(const struct dl_phdr_info *info, ph_module_t *m) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name_off = sizeof *nh;
            size_t desc_off = name_off + ((nh->n_namesz + 3) & ~3u);
            size_t next = desc_off + ((nh->n_descsz + 3) & ~3u);
            if (p + next > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(p + name_off, "GNU", 4)) {
                m->build_id_len = PH_MIN((size_t)nh->n_descsz, sizeof m->build_id);
                memcpy(m->build_id, p + desc_off, m->build_id_len);
                return;
            }
            p += next;
        }
    }
}

static int collect_one(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    collect_t *c = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        if (s < lo) lo = s;
        if (e > hi) hi = e;
    }
    if (lo == UINTPTR_MAX) return 0; /* no loadable segment (the vDSO has one; odd objects may not) */
    if (c->out->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 32;
        ph_module_t *m = realloc(c->out->m, nc * sizeof *m);
        if (!m) {
            c->failed = 1;
            return 1;
        }
        c->out->m = m;
        c->cap = nc;
    }
    ph_module_t *m = &c->out->m[c->out->n++];
    memset(m, 0, sizeof *m);
    m->addr = lo & ~(uintptr_t)0xfff;
    m->size = hi - m->addr;
    m->bias = info->dlpi_addr;
    const char *name = info->dlpi_name;
    if (name && *name) {
        snprintf(m->path, sizeof m->path, "%s", name);
    } else if (c->out->n == 1) { /* the first entry is the main program */
        posthog__os_exe_path(m->path, sizeof m->path, (const void *)lo);
    }
    find_build_id(info, m);
    return 0;
}

int posthog__native_modules(ph_modules_t *out) {
    memset(out, 0, sizeof *out);
    collect_t c = {out, 0, 0};
    dl_iterate_phdr(collect_one, &c);
    if (c.failed) {
        posthog__native_modules_free(out);
        return -1;
    }
    return 0;
}
#else
/* No dl_iterate_phdr (macOS: its images are Mach-O, listed through dyld):
 * events carry raw frames without $debug_images. */
int posthog__native_modules(ph_modules_t *out) {
    memset(out, 0, sizeof *out);
    return 0;
}
#endif

void posthog__native_modules_free(ph_modules_t *m) {
    free(m->m);
    memset(m, 0, sizeof *m);
}

const ph_module_t *posthog__native_module_of(const ph_modules_t *m, uintptr_t pc) {
    for (size_t i = 0; i < m->n; i++)
        if (pc >= m->m[i].addr && pc - m->m[i].addr < m->m[i].size) return &m->m[i];
    return NULL;
}

void posthog__hex(const uint8_t *p, size_t len, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * len] = '\0';
}

void posthog__debug_id(const uint8_t *build_id, size_t len, char out[37]) {
    uint8_t g[16] = {0};
    memcpy(g, build_id, PH_MIN(len, sizeof g));
    /* the first three GUID fields are little-endian */
    uint8_t s[16] = {g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11],
                     g[12], g[13], g[14], g[15]};
    char hexs[33];
    posthog__hex(s, 16, hexs);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hexs, hexs + 8, hexs + 12, hexs + 16, hexs + 20);
}

/* ---------------------------------------------------------------- files */

#if PH_HAVE_DL_ITERATE_PHDR
static int read_at(int fd, void *buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}
#endif

int posthog__file_build_id(const char *path, uint8_t *out, size_t cap, size_t *len) {
    *len = 0;
#if !PH_HAVE_DL_ITERATE_PHDR
    (void)path;
    (void)out;
    (void)cap;
    return -1;
#else
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = -1;
    ElfW(Ehdr) eh;
    if (read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum > 512)
        goto out;
    for (unsigned i = 0; i < eh.e_phnum && rc; i++) {
        ElfW(Phdr) ph;
        if (read_at(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph))) goto out;
        if (ph.p_type != PT_NOTE || ph.p_filesz > 65536) continue;
        char *notes = malloc(ph.p_filesz ? ph.p_filesz : 1);
        if (!notes) goto out;
        if (read_at(fd, notes, ph.p_filesz, (off_t)ph.p_offset)) {
            free(notes);
            continue;
        }
        const char *p = notes, *end = notes + ph.p_filesz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t desc_off = sizeof *nh + ((nh->n_namesz + 3) & ~3u);
            size_t next = desc_off + ((nh->n_descsz + 3) & ~3u);
            if (p + next > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(p + sizeof *nh, "GNU", 4)) {
                *len = PH_MIN((size_t)nh->n_descsz, cap);
                memcpy(out, p + desc_off, *len);
                rc = 0;
                break;
            }
            p += next;
        }
        free(notes);
    }
out:
    close(fd);
    return rc;
#endif
}
