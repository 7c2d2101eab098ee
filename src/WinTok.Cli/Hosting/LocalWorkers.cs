using System.Diagnostics;

namespace WinTok.Cli.Hosting;

/// <summary>
/// Which workers of a local (single-machine) job are known to be gone: a worker is named <c>host:pid</c>
/// (<c>Worker:WorkerName</c>), so on the same host a name whose process no longer runs belongs to an interrupted run.
/// </summary>
internal static class LocalWorkers
{
    public static IReadOnlyCollection<string> Gone(IEnumerable<string?> workers) =>
        workers.OfType<string>().Distinct().Where(IsGone).ToList();

    private static bool IsGone(string worker)
    {
        var colon = worker.LastIndexOf(':');
        if (colon < 0 || worker[..colon] != Environment.MachineName || !int.TryParse(worker[(colon + 1)..], out var pid)) return false;
        if (pid == Environment.ProcessId) return false;
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true; // no such process
        }
    }
}
