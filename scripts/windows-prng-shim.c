/* Test harness only, never shipped: Rust's standard library (1.78+) takes its random numbers
   from ProcessPrng in bcryptprimitives.dll, which Wine 8 lacks. Built as that DLL and placed
   beside the .exe files that run under Wine (scripts/windows.sh, scripts/package.sh), it
   exports ProcessPrng over RtlGenRandom. */
#include <windows.h>
#define RtlGenRandom SystemFunction036
BOOLEAN NTAPI RtlGenRandom(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!RtlGenRandom(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
