/*
 * test_fixture.h - reading the float64-reference fixtures (safetensors files of ../shared/fixtures)
 * in tests: map the file, parse it with the project's raw safetensors reader, look tensors up by
 * name. Include after formats/formats.h.
 */
#ifndef TEST_FIXTURE_H
#define TEST_FIXTURE_H

typedef struct fixture {
    sk_map     map;
    sk_st_raw *t;
    int64_t    n;
} fixture;

static const sk_st_raw *fixture_get(const fixture *f, const char *name) {
    for (int64_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

static int fixture_open(fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    if (sk_map_file(path, &f->map) != SHRINK_OK) return 0;
    return sk_safetensors_parse_raw(f->map.data, f->map.size, path, &f->t, &f->n) == SHRINK_OK;
}

static void fixture_close(fixture *f) {
    sk_st_raw_free(f->t, f->n);
    sk_unmap(&f->map);
}

#endif
