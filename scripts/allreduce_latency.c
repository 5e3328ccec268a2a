/* The time of one MPI_Allreduce (sum of floats) at the sizes of nabla's
 * gradient buckets, for telling a network's own cost from the trainer's.
 * Build: mpicc -O2 -o allreduce_latency scripts/allreduce_latency.c
 * Run:   mpirun -np 2 ./allreduce_latency   (with the same --mca flags as the run) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int sizes[] = {3, 5000, 25000, 262144, 550000};
    const int rounds = 20;
    for (int k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++) {
        int n = sizes[k];
        float *send = calloc(n, sizeof(float)), *recv = calloc(n, sizeof(float));
        if (!send || !recv) {
            fprintf(stderr, "allreduce_latency: out of memory\n");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* One call to set up the connections, then the timed ones. */
        MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double start = MPI_Wtime();
        for (int i = 0; i < rounds; i++)
            MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double each = (MPI_Wtime() - start) / rounds;
        if (rank == 0)
            printf("allreduce of %d floats (%d bytes): %.2f ms\n", n, n * 4, each * 1e3);
        free(send);
        free(recv);
    }
    MPI_Finalize();
    return 0;
}
