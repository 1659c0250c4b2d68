/* A downstream program built only from the installed package (pkg-config or CMake). */
#include <mhc/mhc.h>
#include <stdio.h>

int main(void) {
  if (mhc_get_version() != MHC_VERSION) {
    fprintf(stderr, "header %d != library %d\n", MHC_VERSION, (int)mhc_get_version());
    return 1;
  }
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  mhc_context *ctx = NULL;
  if (mhc_context_create(&ctx, &cfg) != MHC_SUCCESS) {
    fprintf(stderr, "create: %s\n", mhc_last_error_message());
    return 1;
  }
  printf("consumer: libmhc %s, CPU context ok\n", MHC_VERSION_STRING);
  return mhc_context_destroy(ctx) == MHC_SUCCESS ? 0 : 1;
}
