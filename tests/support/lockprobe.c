/*
 * ph_lockprobe PATH: exits 0 when this (separate) process can take a POSIX
 * write lock on PATH, 1 when another process holds one, 2 when PATH cannot
 * be opened. The spool tests exec it instead of probing from a forked copy
 * of themselves, so that valgrind never runs a leak check in a child that
 * shares the parent's heap.
 */
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) return 2;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1;
}
