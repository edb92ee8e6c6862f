#include <stddef.h>
#include <cblas.h>
/* Not in cblas.h on every build, but exported by OpenBLAS. */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
