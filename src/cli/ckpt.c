/* ckpt.c: checkpoint files with integrity checks (ckpt.h). */
#define _POSIX_C_SOURCE 200809L /* fileno, ftruncate, ftello */
#include "ckpt.h"
#include "bafu/version.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bafu/net.h"
#include "bafu/table.h"
#include "bafu/text.h"

static uint32_t crc_of(uint32_t crc, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) { /* zlib's crc32 takes an unsigned length */
    const uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    crc = (uint32_t)crc32(crc, b, k);
    b += k;
    n -= k;
  }
  return crc;
}

/* Open a checkpoint for reading: it must be a regular file (a FIFO or a
 * device at a checkpoint path is refused, never waited on or read without
 * end) whose size is within the memory limit. *f = NULL and BAFU_OK when it
 * does not exist and missing_ok. */
static bafu_status open_checkpoint(const char *path, int missing_ok, FILE **f, struct stat *sb) {
  *f = NULL;
  const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && missing_ok) return BAFU_OK;
  if (fd < 0) return bafu_error(BAFU_EIO, "--resume: cannot open '%s': %s", path, strerror(errno));
  bafu_status st = BAFU_OK;
  if (fstat(fd, sb) != 0) {
    st = bafu_error(BAFU_EIO, "--resume: cannot read '%s': %s", path, strerror(errno));
  } else if (!S_ISREG(sb->st_mode)) {
    st = bafu_error(BAFU_EINVAL, "--resume: '%s' is not a regular file, so not a bafu checkpoint", path);
  } else if ((st = bafu_memory_check((double)sb->st_size, "--resume: the checkpoint"))) {
  } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 || !(*f = fdopen(fd, "rb"))) {
    st = bafu_error(BAFU_EIO, "--resume: cannot read '%s': %s", path, strerror(errno));
  }
  if (st) close(fd);
  return st;
}

/* Whether s[0..n) are lower-case hex digits, the only form bafu writes. */
static int lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* ---- sweep journal ------------------------------------------------------ */

#define SWEEP_MAGIC "bafu sweep checkpoint 2 " BAFU_VERSION_STRING

/* Read one line of at most cap-1 bytes (with its '\n') into buf; 0 at EOF or
 * for a line cut short or too long (buf holds what was read). */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len) {
  size_t n = 0;
  int c;
  while (n + 1 < cap && (c = getc(f)) != EOF) {
    buf[n++] = (char)c;
    if (c == '\n') break;
  }
  buf[n] = '\0';
  *len = n;
  return n > 0 && buf[n - 1] == '\n';
}

static uint32_t header_crc(const char *grid) {
  uint32_t c = crc_of(0, SWEEP_MAGIC "\n", strlen(SWEEP_MAGIC) + 1);
  c = crc_of(c, "grid ", 5);
  c = crc_of(c, grid, strlen(grid));
  return crc_of(c, "\n", 1);
}

static void free_rows(char **rows, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    free(rows[k]);
    rows[k] = NULL;
  }
}

bafu_status ckpt_sweep_load(const char *path, const char *grid, size_t npoints, ckpt_rows_check check, void *ctx,
                            char **rows, size_t *done, ckpt_journal *j) {
  *done = 0;
  j->f = NULL;
  FILE *f;
  struct stat sb;
  bafu_status ost = open_checkpoint(path, 0, &f, &sb);
  if (ost) return ost;
  const off_t fsize = sb.st_size;
  bafu_status st = BAFU_OK;
  const size_t glen = strlen(grid);
  char *line = malloc(glen + 64);
  size_t len;
  uint32_t crc = 0;
  if (!line) {
    fclose(f);
    return bafu_error(BAFU_ENOMEM, "--resume: out of memory");
  }
  /* the header: magic, grid, and the check of the two as written (so that a
     damaged grid line is told apart from another grid) */
  const size_t gcap = (glen > (1u << 16) ? glen : (1u << 16)) + 64; /* any grid line bafu writes */
  char *gline = malloc(gcap);
  size_t gl = 0;
  if (!gline) {
    st = bafu_error(BAFU_ENOMEM, "--resume: out of memory");
  } else if (!read_line(f, line, glen + 64, &len) || strcmp(line, SWEEP_MAGIC "\n") != 0) {
    st = bafu_error(BAFU_EINVAL, "--resume: '%s' is not a checkpoint of this bafu (" SWEEP_MAGIC ")", path);
  } else if (!read_line(f, gline, gcap, &gl) || strncmp(gline, "grid ", 5) != 0) {
    st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (no grid line); it is kept", path);
  } else {
    unsigned long c0;
    char tail;
    crc = crc_of(crc_of(0, SWEEP_MAGIC "\n", strlen(SWEEP_MAGIC) + 1), gline, gl);
    if (!read_line(f, line, glen + 64, &len) || len != 15 || !lower_hex(line + 6, 8) || sscanf(line, "check %8lx%c", &c0, &tail) != 2 || tail != '\n' ||
        (uint32_t)c0 != crc)
      st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (its header fails the checksum); it is kept", path);
    else if (gl != glen + 6 || memcmp(gline + 5, grid, glen) != 0)
      st = bafu_error(BAFU_EINVAL, "--resume: '%s' holds another grid (resume with that grid, or remove it)", path);
  }
  free(gline);
  off_t valid = ftello(f);
  for (size_t rec = 1; !st; ++rec) {
    int complete = read_line(f, line, glen + 64, &len);
    if (len == 0) break; /* the end */
    size_t k, n;
    unsigned long ck, hk;
    char tail;
    int used = 0;
    if (!complete) { /* cut short by an interruption: only at the very end */
      if (getc(f) == EOF) break;
      st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (record %zu is malformed); it is kept", path, rec);
      break;
    }
    /* the record line checks itself (hk), so that a short record after it can
       only be an interruption, never a damaged length */
    if (sscanf(line, "point %zu %zu %8lx%n %8lx%c", &k, &n, &ck, &used, &hk, &tail) != 5 || tail != '\n' ||
        len < 10 || line[len - 10] != ' ' || !lower_hex(line + len - 9, 8) ||
        (uint32_t)hk != crc_of(0, line, (size_t)used)) {
      st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (record %zu is malformed); it is kept", path, rec);
      break;
    }
    const off_t here = ftello(f);
    if (here < 0 || (uint64_t)n > (uint64_t)(fsize - here)) break; /* cut short (the line is sound): read no more */
    char *text = malloc(n + 1);
    if (!text) {
      st = bafu_error(BAFU_ENOMEM, "--resume: out of memory");
      break;
    }
    const size_t got = fread(text, 1, n, f);
    if (got < n) { /* the last record, cut short */
      free(text);
      if (ferror(f)) st = bafu_error(BAFU_EIO, "--resume: error reading '%s'", path);
      break;
    }
    text[n] = '\0';
    char head[64];
    const int hl = snprintf(head, sizeof head, "point %zu %zu", k, n);
    const uint32_t c = crc_of(crc_of(crc, head, (size_t)hl), text, n);
    const char *why = (uint32_t)ck != c ? "fails the checksum"
                      : k >= npoints      ? "names a point outside the grid"
                      : rows[k]           ? "repeats a point"
                      : memchr(text, '\0', n) || (check && check(k, text, ctx)) ? "holds malformed rows"
                                                                                 : NULL;
    if (why) {
      free(text);
      st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (record %zu, point %zu, %s); it is kept", path, rec, k,
                      why);
      break;
    }
    rows[k] = text;
    ++*done;
    crc = c;
    valid = ftello(f);
  }
  free(line);
  fclose(f);
  if (!st) { /* append after the last complete record */
    FILE *a = fopen(path, "r+b");
    if (!a || ftruncate(fileno(a), valid) != 0 || fseeko(a, valid, SEEK_SET) != 0) {
      st = bafu_error(BAFU_EIO, "--checkpoint: cannot reopen '%s': %s", path, strerror(errno));
      if (a) fclose(a);
    } else {
      j->f = a;
      j->crc = crc;
    }
  }
  if (st) {
    free_rows(rows, npoints);
    *done = 0;
  }
  return st;
}

bafu_status ckpt_sweep_create(const char *path, const char *grid, ckpt_journal *j) {
  j->f = NULL;
  const int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    bafu_status st = bafu_error(BAFU_EIO, "--checkpoint: cannot create '%s': %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return st;
  }
  j->crc = header_crc(grid);
  if (fprintf(f, SWEEP_MAGIC "\ngrid %s\ncheck %08lx\n", grid, (unsigned long)j->crc) < 0 || fflush(f)) {
    fclose(f);
    return bafu_error(BAFU_EIO, "--checkpoint: cannot write '%s': %s", path, strerror(errno));
  }
  j->f = f;
  return BAFU_OK;
}

bafu_status ckpt_sweep_append(ckpt_journal *j, size_t k, const char *text) {
  const size_t n = strlen(text);
  char head[64];
  const int hl = snprintf(head, sizeof head, "point %zu %zu", k, n);
  const uint32_t c = crc_of(crc_of(j->crc, head, (size_t)hl), text, n);
  char line[96];
  const int ll = snprintf(line, sizeof line, "%s %08lx", head, (unsigned long)c);
  if (fprintf(j->f, "%s %08lx\n", line, (unsigned long)crc_of(0, line, (size_t)ll)) < 0 ||
      fwrite(text, 1, n, j->f) != n || fflush(j->f) != 0)
    return bafu_error(BAFU_EIO, "--checkpoint: cannot write: %s", strerror(errno));
  j->crc = c;
  return BAFU_OK;
}

/* ---- train -------------------------------------------------------------- */

#define TRAIN_MAGIC "bafu train checkpoint 2\n"

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

int ckpt_owner_lock(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  else return -1;
  const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  while (flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) {
      close(fd);
      return -1;
    }
  return fd;
}

void ckpt_owner_unlock(int fd) {
  if (fd >= 0) close(fd); /* closing releases the lock */
}

int ckpt_owner_check(const ckpt_owner *o, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT && !o->have;
  return o->have && (uint64_t)st.st_dev == o->dev && (uint64_t)st.st_ino == o->ino;
}

void ckpt_owner_record(ckpt_owner *o, const char *path) {
  struct stat st;
  o->have = stat(path, &st) == 0;
  if (o->have) o->dev = (uint64_t)st.st_dev, o->ino = (uint64_t)st.st_ino;
}

int ckpt_train_save(const char *path, size_t step, const void *state, size_t state_len, const char *rows,
                    size_t rows_len) {
  bafu_table *t;
  if (bafu_file_open(path, &t)) return 1;
  FILE *f = bafu_table_stream(t);
  unsigned char b[8];
  uint32_t crc = 0;
  int ok = 1;
#define PUT(p, n) (ok = ok && fwrite((p), 1, (n), f) == (n), crc = crc_of(crc, (p), (n)))
  PUT(TRAIN_MAGIC, strlen(TRAIN_MAGIC));
  put_u64(b, step);
  PUT(b, 8);
  put_u64(b, state_len);
  PUT(b, 8);
  PUT(state, state_len);
  put_u64(b, rows_len);
  PUT(b, 8);
  PUT(rows, rows_len);
#undef PUT
  for (int i = 0; i < 4; ++i) b[i] = (unsigned char)(crc >> (8 * i));
  ok = ok && fwrite(b, 1, 4, f) == 4;
  if (!ok) {
    bafu_table_abort(t);
    return 1;
  }
  return bafu_table_commit(t) != BAFU_OK;
}

/* Split off the next field of a row (space-separated); NULL at the end. */
static char *next_field(char **s) {
  while (**s == ' ') ++*s;
  if (!**s) return NULL;
  char *tok = *s;
  while (**s && **s != ' ') ++*s;
  if (**s) *(*s)++ = '\0';
  return tok;
}

/* The rows of steps 0 .. step-1 (see ckpt.h): 1 if sound. */
static int train_rows_sound(char *rows, size_t step, size_t log_every) {
  size_t fields = 0, group = 0, groups = 0, in_group = 0;
  char *line = rows;
  for (size_t li = 0; *line; ++li) {
    char *nl = strchr(line, '\n');
    if (!nl) return 0; /* every row ends in a newline */
    *nl = '\0';
    char *s = line, *tok;
    line = nl + 1;
    size_t nf = 0;
    if (li == 0) { /* the header */
      if (strncmp(s, "step epoch final layer loss ", 28) != 0) return 0;
      while (next_field(&s)) ++nf;
      fields = nf;
      continue;
    }
    double v[3] = {0};
    while ((tok = next_field(&s))) {
      double x;
      if (!bafu_parse_double(tok, &x)) return 0;
      if (nf < 3) v[nf] = x;
      ++nf;
    }
    if (nf != fields || v[2] != 0) return 0;
    if (groups == 0 || v[0] != (double)((groups - 1) * log_every)) { /* the next logged step begins */
      if (v[0] != (double)(groups * log_every)) return 0;
      if (groups == 1) group = in_group;
      else if (groups > 1 && in_group != group) return 0;
      ++groups;
      in_group = 0;
    }
    ++in_group;
  }
  if (groups >= 2 && in_group != group) return 0;
  return fields > 0 && groups == (step + log_every - 1) / log_every;
}

bafu_status ckpt_train_load(const char *path, size_t log_every, size_t *step, void **state, size_t *state_len,
                            char **rows, size_t *rows_len) {
  *state = NULL;
  *rows = NULL;
  *step = *state_len = *rows_len = 0;
  FILE *f;
  struct stat sb; /* no size field may claim more than the file holds */
  bafu_status ost = open_checkpoint(path, 1, &f, &sb);
  if (ost || !f) return ost;
  const uint64_t fsize = (uint64_t)sb.st_size;
  bafu_status st = BAFU_OK;
  unsigned char b[32];
  char magic[sizeof TRAIN_MAGIC];
  uint32_t crc = 0;
  uint64_t n1 = 0, n2 = 0, s = 0;
  unsigned char *st_buf = NULL;
  char *rw = NULL;
#define GET(p, n) (fread((p), 1, (n), f) == (n) ? (crc = crc_of(crc, (p), (n)), 1) : 0)
  if (!GET(magic, strlen(TRAIN_MAGIC)) || memcmp(magic, TRAIN_MAGIC, strlen(TRAIN_MAGIC)) != 0) {
    st = bafu_error(BAFU_EINVAL, "--resume: '%s' is not a bafu train checkpoint (version 2)", path);
  } else if (!GET(b, 16) || (s = get_u64(b), n1 = get_u64(b + 8), n1 > fsize) ||
             !(st_buf = malloc(n1 ? n1 : 1)) || !GET(st_buf, n1) || !GET(b, 8) ||
             (n2 = get_u64(b), n2 > fsize) || !(rw = malloc(n2 + 1)) || !GET(rw, n2) ||
             fread(b, 1, 4, f) != 4 || getc(f) != EOF) {
    st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (its sizes do not match its length); it is kept", path);
  } else if ((uint32_t)(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) != crc) {
    st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (it fails the checksum); it is kept", path);
  } else {
    rw[n2] = '\0';
    char *copy = malloc(n2 + 1);
    if (!copy) {
      st = bafu_error(BAFU_ENOMEM, "--resume: out of memory");
    } else {
      memcpy(copy, rw, n2 + 1);
      const size_t every = log_every ? log_every : 1;
      size_t other = 0; /* the interval the rows were logged at, if not `every` */
      if (s == 0 || memchr(rw, '\0', n2)) {
        st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (step %llu, or a NUL byte in its rows); it is kept",
                        path, (unsigned long long)s);
      } else if (!train_rows_sound(copy, (size_t)s, every)) {
        /* sound rows of another --log-every K (K = the second logged step) are
           another configuration; anything else is damage */
        const char *row2 = strchr(rw, '\n');
        for (row2 = row2 ? strchr(row2 + 1, '\n') : NULL; row2 && row2[1];) {
          double k;
          char tok[32];
          const size_t len = strcspn(row2 + 1, " \n");
          if (len < sizeof tok) {
            memcpy(tok, row2 + 1, len), tok[len] = '\0';
            if (bafu_parse_double(tok, &k) && k >= 1 && k <= (double)s && k == floor(k) && (size_t)k != every) {
              other = (size_t)k;
              break;
            }
          }
          row2 = strchr(row2 + 1, '\n');
        }
        /* one logged step only: any interval from the step on fits */
        const size_t k = other ? other : (size_t)s;
        memcpy(copy, rw, n2 + 1);
        if (k != every && train_rows_sound(copy, (size_t)s, k))
          st = other ? bafu_error(BAFU_EINVAL, "--resume: '%s' is of another configuration: its rows were logged every "
                                               "%zu steps, not %zu (--log-every); it is kept", path, other, every)
                     : bafu_error(BAFU_EINVAL, "--resume: '%s' is of another configuration: its rows were logged at "
                                               "another interval than %zu steps (--log-every); it is kept", path, every);
        else
          st = bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (its rows do not match step %llu); it is kept",
                          path, (unsigned long long)s);
      }
      free(copy);
    }
  }
#undef GET
  fclose(f);
  if (st) {
    free(st_buf);
    free(rw);
    return st;
  }
  *step = (size_t)s;
  *state = st_buf;
  *state_len = (size_t)n1;
  *rows = rw;
  *rows_len = (size_t)n2;
  return BAFU_OK;
}

/* ---- text files with a crc line ---------------------------------------- */

int ckpt_text_save(const char *path, const char *text, size_t len) {
  bafu_table *t;
  if (bafu_file_open(path, &t)) return 1;
  FILE *f = bafu_table_stream(t);
  if (fwrite(text, 1, len, f) != len || fprintf(f, "crc %08lx\n", (unsigned long)crc_of(0, text, len)) < 0) {
    bafu_table_abort(t);
    return 1;
  }
  return bafu_table_commit(t) != BAFU_OK;
}

bafu_status ckpt_text_load(const char *path, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  FILE *f;
  struct stat sb;
  bafu_status ost = open_checkpoint(path, 1, &f, &sb);
  if (ost || !f) return ost;
  size_t n = 0, cap = 4096;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (n + 1 == cap) {
      char *nb = cap < ((size_t)1 << 30) ? realloc(buf, cap *= 2) : NULL;
      if (!nb) free(buf);
      buf = nb;
    }
  }
  const int bad_read = ferror(f);
  fclose(f);
  if (!buf) return bafu_error(BAFU_ENOMEM, "--resume: out of memory (or '%s' is over 1 GiB)", path);
  if (bad_read) {
    free(buf);
    return bafu_error(BAFU_EIO, "--resume: error reading '%s'", path);
  }
  buf[n] = '\0';
  /* the last line: "crc XXXXXXXX\n" */
  size_t body = n;
  unsigned long c = 0;
  char tail = 0;
  const int ok = n >= 13 && buf[n - 1] == '\n' && (body = n - 13, body == 0 || buf[body - 1] == '\n') &&
                 lower_hex(buf + body + 4, 8) && sscanf(buf + body, "crc %8lx%c", &c, &tail) == 2 && tail == '\n' && !memchr(buf, '\0', n) &&
                 (uint32_t)c == crc_of(0, buf, body);
  if (!ok) {
    free(buf);
    return bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (it fails the checksum); it is kept", path);
  }
  buf[body] = '\0';
  *text = buf;
  *len = body;
  return BAFU_OK;
}
