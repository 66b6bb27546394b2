/* Test harness only, never shipped (tests/it/windows.rs): delivers the console control events
   Wine has no way to deliver. Wine turns SIGINT into Ctrl-C, but its server refuses every other
   event (GenerateConsoleCtrlEvent answers "not implemented" for Ctrl-Break), and it has no
   console window to close. Windows itself delivers an event by starting a thread in the
   process at kernelbase's CtrlRoutine with the event as its argument; this does the same, and
   for the events Windows ends a process after (closing the console, logging off, shutting
   down) it ends the process as Windows does: when the handlers return, or after 5 seconds.

     console-event run CMD [ARGS...]   runs CMD, prints "console-event: pid N" (CMD's process
                                       id, which `send` takes) on stderr, exits with CMD's code
     console-event send EVENT PID      EVENT: break or close; prints what became of PID */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <string.h>

/* Windows' time for a process to end after its console was closed. */
#define CLOSE_TIMEOUT_MS 5000

/* The command line after the first two words (this program and "run"), as given. */
static char *after_two_words(char *line) {
  for (int word = 0; word < 2; word++) {
    while (*line == ' ' || *line == '\t') line++;
    if (*line == '"') {
      line++;
      while (*line && *line != '"') line++;
      if (*line) line++;
    } else {
      while (*line && *line != ' ' && *line != '\t') line++;
    }
  }
  while (*line == ' ' || *line == '\t') line++;
  return line;
}

static int run(void) {
  STARTUPINFOA startup = {sizeof startup};
  PROCESS_INFORMATION process;
  if (!CreateProcessA(NULL, after_two_words(GetCommandLineA()), NULL, NULL, TRUE, 0, NULL,
                      NULL, &startup, &process)) {
    fprintf(stderr, "console-event: can't start the command: error %lu\n", GetLastError());
    return 120;
  }
  fprintf(stderr, "console-event: pid %lu\n", process.dwProcessId);
  fflush(stderr);
  WaitForSingleObject(process.hProcess, INFINITE);
  DWORD code = 1;
  GetExitCodeProcess(process.hProcess, &code);
  return (int)code;
}

static int deliver(const char *name, DWORD pid) {
  DWORD event;
  if (strcmp(name, "break") == 0) event = CTRL_BREAK_EVENT;
  else if (strcmp(name, "close") == 0) event = CTRL_CLOSE_EVENT;
  else {
    fprintf(stderr, "console-event: unknown event %s (break or close)\n", name);
    return 2;
  }
  FARPROC routine = GetProcAddress(GetModuleHandleA("kernelbase.dll"), "CtrlRoutine");
  HANDLE target = OpenProcess(PROCESS_ALL_ACCESS, FALSE, pid);
  if (!routine || !target) {
    fprintf(stderr, "console-event: can't reach process %lu: error %lu\n", pid, GetLastError());
    return 1;
  }
  HANDLE handler = CreateRemoteThread(target, NULL, 0, (LPTHREAD_START_ROUTINE)routine,
                                      (LPVOID)(ULONG_PTR)event, 0, NULL);
  if (!handler) {
    fprintf(stderr, "console-event: can't deliver the event: error %lu\n", GetLastError());
    return 1;
  }
  if (event == CTRL_BREAK_EVENT) {
    WaitForSingleObject(handler, INFINITE);
    printf("delivered\n");
    return 0;
  }
  HANDLE either[2] = {target, handler};
  DWORD woke = WaitForMultipleObjects(2, either, FALSE, CLOSE_TIMEOUT_MS);
  /* A handler that ends the process itself (ExitProcess) ends its own thread first: a moment
     more tells that from a handler that returned. */
  BOOL returned = woke == WAIT_OBJECT_0 + 1;
  if (returned) woke = WaitForSingleObject(target, 200);
  if (woke == WAIT_OBJECT_0) {
    DWORD code = 1;
    GetExitCodeProcess(target, &code);
    printf("exited by itself with code %lu\n", code);
  } else {
    TerminateProcess(target, STATUS_CONTROL_C_EXIT);
    printf(returned ? "terminated when its handler returned\n" : "terminated after 5 seconds\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "run") == 0) return run();
  if (argc == 4 && strcmp(argv[1], "send") == 0) return deliver(argv[2], strtoul(argv[3], NULL, 10));
  fprintf(stderr, "usage: console-event run CMD [ARGS...] | console-event send break|close PID\n");
  return 2;
}
