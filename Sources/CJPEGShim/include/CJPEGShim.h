#ifndef CJPEGSHIM_H
#define CJPEGSHIM_H
#include <stddef.h>
/* placeholder; the JPEG shim lives in shim.c */
int lg_jpeg_placeholder(void);
#endif
