using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace WinTok.IntegrationTests;

/// <summary>
/// A real `wintok` child process (<c>dotnet WinTok.Cli.dll …</c>, the build of this checkout and configuration) whose
/// stdout and stderr are kept, line by line, for the failure message of the test that started it. Disposing kills it
/// (SIGKILL, whole tree) if it still runs, so a failed test leaves no orphan behind.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private const int LogLinesKept = 400;

    private readonly Process process;
    private readonly ConcurrentQueue<string> lines = new();

    private WorkerProcess(string name, Process process)
    {
        Name = name;
        this.process = process;
    }

    public string Name { get; }

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    /// <summary>The built WinTok.Cli.dll beside this test assembly's configuration (the project reference builds it).</summary>
    public static string CliDll { get; } = FindCliDll();

    /// <summary>
    /// Starts <c>wintok {arguments}</c> with <paramref name="environment"/> added to this process's own (an empty value
    /// removes the variable), less the variables named in <paramref name="unset"/>. The server variables of
    /// deploy/services.env (<see cref="ServerVariables"/>) are never inherited: they point at the user's database and
    /// queues, so a test that wants a server passes its own database, queue prefix or container. HOME is a private folder
    /// of this test run unless given, so the ~/.wintok and ~/.cache/wintok a run writes never reach the user's own.
    /// </summary>
    public static WorkerProcess Start(string name, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment,
        IEnumerable<string>? unset = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(CliDll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["HOME"] = TestHome.Folder;
        foreach (var variable in ServerVariables)
        {
            start.Environment.Remove(variable);
        }
        foreach (var (key, value) in environment)
        {
            if (value.Length == 0) start.Environment.Remove(key);
            else start.Environment[key] = value;
        }
        foreach (var key in unset ?? [])
        {
            start.Environment.Remove(key);
        }
        var process = new Process { StartInfo = start };
        var child = new WorkerProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Keep("out", e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep("err", e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start dotnet {CliDll}");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The servers' variables of deploy/services.env: without them every verb runs on the embedded defaults.</summary>
    public static IReadOnlyList<string> ServerVariables { get; } = ["WINTOK_POSTGRES", "WINTOK_RABBITMQ", "WINTOK_BLOB_CONNECTION"];

    /// <summary>Runs <c>wintok {arguments}</c> to its end; returns its exit code and its stdout lines.</summary>
    public static async Task<(int ExitCode, IReadOnlyList<string> Stdout, string Log)> RunAsync(
        string name, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, IEnumerable<string>? unset = null)
    {
        await using var child = Start(name, arguments, environment, unset);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await child.process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"wintok {name} still ran after {timeout} (killed):\n{child.Log}");
        }
        var stdout = child.lines.Where(l => l.StartsWith($"{name} out: ", StringComparison.Ordinal))
            .Select(l => l[$"{name} out: ".Length..]).ToList();
        return (child.process.ExitCode, stdout, child.Log);
    }

    /// <summary>SIGINT, as Ctrl+C in a terminal sends it; waits for the process to end on its own terms.</summary>
    public Task<int> InterruptAsync(TimeSpan patience) => SignalAsync("INT", patience);

    /// <summary>SIGTERM, as `kill` and an orchestrator send it; waits for the process to end on its own terms.</summary>
    public Task<int> TerminateAsync(TimeSpan patience) => SignalAsync("TERM", patience);

    private async Task<int> SignalAsync(string signal, TimeSpan patience)
    {
        using (var kill = Process.Start("kill", [$"-{signal}", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
        Keep("test", $"signalled with SIG{signal}");
        using var limit = new CancellationTokenSource(patience);
        await process.WaitForExitAsync(limit.Token);
        return process.ExitCode;
    }

    /// <summary>Whether it has written a line containing <paramref name="text"/> to stdout or stderr.</summary>
    public bool HasWritten(string text) => lines.Any(line => line.Contains(text, StringComparison.Ordinal));

    /// <summary>SIGKILL: no drain, no lease release, no goodbye to the broker.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(limit.Token);
        Keep("test", "killed with SIGKILL");
    }

    /// <summary>The last lines it wrote, each prefixed with its name and stream.</summary>
    public string Log => string.Join('\n', lines.TakeLast(LogLinesKept));

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await process.WaitForExitAsync(limit.Token);
            }
        }
        catch (InvalidOperationException)
        {
            // never started, or already reaped
        }
        process.Dispose();
    }

    private void Keep(string stream, string? line)
    {
        if (line is null)
        {
            return;
        }
        lines.Enqueue($"{Name} {stream}: {line}");
        while (lines.Count > LogLinesKept * 4 && lines.TryDequeue(out _))
        {
        }
    }

    private static string FindCliDll()
    {
        var configuration = typeof(WorkerProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var root = Path.GetDirectoryName(Path.GetDirectoryName(ServicesFixture.ServicesScript))!;
        var dll = Path.Combine(root, "src", "WinTok.Cli", "bin", configuration, "net10.0", "linux-x64", "WinTok.Cli.dll");
        return File.Exists(dll)
            ? dll
            : throw new FileNotFoundException($"{dll} is missing: build src/WinTok.Cli in {configuration} (the test project references it)", dll);
    }
}
