#include "CJPEGShim.h"
int lg_jpeg_placeholder(void) { return 0; }
