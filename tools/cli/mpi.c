/*
 * mpi.c - data-parallel training across processes for `make MPI=1` builds (docs/scale.md):
 * `mpirun -np R build-mpi/shrink train|distill|lora ...`. The library holds no MPI; this file
 * gives it the communication it asks for (shrink_train_comm):
 *
 *   sum     the ranks' parts summed in order along a chain, rank r adding its parts one by one
 *           to what rank r - 1 sends ((x_0 + x_1) + x_2 ...: the additions one process makes
 *           with the same --accum, so the runs are bit-identical), then broadcast from the
 *           last rank;
 *   agree   the hash of every rank's inputs and options gathered and compared.
 *
 * Every rank checks its arguments, then all meet at a barrier before rank 0 creates the output
 * folder. Ranks other than 0 print nothing on stdout. A failing rank stops the whole job
 * (MPI_Abort) after its message, so no rank waits forever for a dead peer; the last checkpoint
 * rank 0 wrote stays valid (written whole, then renamed). Without SHRINK_MPI (the default
 * build) cli_mpi_comm returns NULL and nothing here runs.
 */
#include "cli.h"

#ifdef SHRINK_MPI

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static int               mpi_on, mpi_rank, mpi_size;
static int64_t           mpi_sent;       /* bytes this rank sent in sums */
static shrink_train_comm mpi_comm;

/* The chain moves PIPE elements at a time: rank r + 1 adds piece i while rank r adds piece
 * i + 1, so the chain's time is about one array's transfer plus (R - 2) pieces, not R - 1
 * arrays (docs/scale.md, "Time per step"). The broadcast goes in pieces of BCAST elements (MPI
 * counts are int). */
enum { PIPE = 1 << 18, BCAST = 1 << 26 };

/* The ordered sum (shrink_train_comm.sum_f32): rank 0 adds its k parts into x[0] and sends
 * them; rank r receives the running sum, adds its parts one by one, sends it on; the last rank
 * broadcasts the total. */
static shrink_status chain_sum(void *const *xs, int32_t k, int64_t n, MPI_Datatype t,
                               size_t es, int f64) {
    void *prev = mpi_rank > 0 ? malloc((size_t)(n < PIPE ? (n ? n : 1) : PIPE) * es) : NULL;
    if (mpi_rank > 0 && !prev) return SHRINK_ERR_NOMEM;
    for (int64_t off = 0; off < n; off += PIPE) {
        const int m = (int)(n - off < PIPE ? n - off : PIPE);
        char *x = (char *)xs[0] + (size_t)off * es;
        if (mpi_rank > 0) MPI_Recv(prev, m, t, mpi_rank - 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int32_t p = mpi_rank > 0 ? 0 : 1; p < k; p++) {
            /* the running sum: what rank r - 1 sent, then x[0] itself (rank 0) */
            const char *a = p == 0 ? prev : x;
            const char *b = (const char *)xs[p] + (size_t)off * es;
            for (int i = 0; i < m; i++) {
                if (f64) ((double *)x)[i] = ((const double *)a)[i] + ((const double *)b)[i];
                else ((float *)x)[i] = ((const float *)a)[i] + ((const float *)b)[i];
            }
        }
        if (mpi_rank < mpi_size - 1) {
            MPI_Send(x, m, t, mpi_rank + 1, 7, MPI_COMM_WORLD);
            mpi_sent += (int64_t)m * (int64_t)es;
        }
    }
    for (int64_t off = 0; off < n; off += BCAST) {
        const int m = (int)(n - off < BCAST ? n - off : BCAST);
        MPI_Bcast((char *)xs[0] + (size_t)off * es, m, t, mpi_size - 1, MPI_COMM_WORLD);
        if (mpi_rank == mpi_size - 1) mpi_sent += (int64_t)m * (int64_t)es;
    }
    free(prev);
    return SHRINK_OK;
}

static shrink_status sum_f32(void *u, float *const *x, int32_t k, int64_t n) {
    return chain_sum((void *const *)x, k, n, MPI_FLOAT, sizeof **x, 0);
}
static shrink_status sum_f64(void *u, double *const *x, int32_t k, int64_t n) {
    return chain_sum((void *const *)x, k, n, MPI_DOUBLE, sizeof **x, 1);
}

static shrink_status agree(void *u, uint64_t hash) {
    unsigned long long mine = hash, *all = malloc((size_t)mpi_size * sizeof *all);
    if (!all) return SHRINK_ERR_NOMEM;
    MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG,
                  MPI_COMM_WORLD);
    int differs = -1;
    for (int r = 1; r < mpi_size && differs < 0; r++)
        if (all[r] != all[0]) differs = r;
    free(all);
    if (differs >= 0) {
        fprintf(stderr, "shrink: rank %d: the inputs or options of rank %d differ from rank "
                "0's (every rank must run the same command on the same files)\n", mpi_rank,
                differs);
        return SHRINK_ERR_ARG;
    }
    return SHRINK_OK;
}

const shrink_train_comm *cli_mpi_comm(void) {
    if (!mpi_on) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) return NULL;
        mpi_on = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
        if (mpi_rank != 0 && !freopen("/dev/null", "w", stdout)) return NULL;
        MPI_Barrier(MPI_COMM_WORLD);   /* every rank checked its arguments */
    }
    if (mpi_size < 2) return NULL;
    mpi_comm = (shrink_train_comm){.rank = mpi_rank, .n_ranks = mpi_size, .sum_f32 = sum_f32,
                                   .sum_f64 = sum_f64, .agree = agree, .user = NULL};
    return &mpi_comm;
}

int cli_mpi_end(int rc) {
    if (!mpi_on) return rc;
    fflush(stdout);
    fflush(stderr);
    if (rc != CLI_OK && mpi_size > 1) {
        fprintf(stderr, "shrink: rank %d of %d failed: stopping every rank\n", mpi_rank,
                mpi_size);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    mpi_on = 0;
    return rc;
}

int     cli_mpi_ranks(void) { return mpi_on ? mpi_size : 1; }
int64_t cli_mpi_bytes_sent(void) { return mpi_sent; }

#else /* the default build: one process */

const shrink_train_comm *cli_mpi_comm(void) { return NULL; }
int     cli_mpi_end(int rc) { return rc; }
int     cli_mpi_ranks(void) { return 1; }
int64_t cli_mpi_bytes_sent(void) { return 0; }

#endif
