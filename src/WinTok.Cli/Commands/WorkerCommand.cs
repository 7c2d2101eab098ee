using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Cli.Hosting;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok worker`: the long-running service. Consumes job partitions from RabbitMQ, runs the model, writes
/// shards, records them in PostgreSQL; on SIGTERM stops taking messages and drains (JobQueue:DrainTimeout within
/// HostOptions:ShutdownTimeout). Writes Worker:HealthFile once started and deletes it once stopped.
/// </summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var command = new Command("worker", "Run a worker: consume job partitions from RabbitMQ until stopped (SIGTERM).");
        command.SetAction((parse, cancellationToken) => RunAsync(cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Normal, serviceName: "wintok-worker");
        builder.AddWinTokWorker();
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } problem) return ExitCodes.Usage(problem);
        // Taken before RunAsync, which disposes the host's services when it returns.
        var backgroundServices = host.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
        await host.RunAsync(cancellationToken);
        // A consumer that died stopped the host (it is logged); a non-zero exit makes the orchestrator restart the worker.
        return backgroundServices.Any(s => s.ExecuteTask is { IsFaulted: true }) ? ExitCodes.Failed : ExitCodes.Success;
    }
}
