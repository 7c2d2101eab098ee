using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Cli.Hosting;
using WinTok.Jobs.Schedules;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok worker`: the long-running service. Consumes job partitions, runs the model, writes outputs, records them;
/// on SIGTERM stops taking messages and drains (JobQueue:DrainTimeout within HostOptions:ShutdownTimeout). Writes
/// Worker:HealthFile once started and deletes it once stopped. With servers configured it consumes RabbitMQ and records
/// in PostgreSQL; without, it runs on one machine's embedded defaults (<see cref="EmbeddedDefaults"/>) and runs the
/// evaluation schedules too (Scheduler:Enabled decides otherwise), so `wintok schedules add` then `wintok worker` is all
/// one machine needs. It always runs the regression check of finished scheduled evaluations.
/// </summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var command = new Command("worker",
            "Run a worker until stopped (SIGTERM): job partitions from RabbitMQ and results in PostgreSQL, or on one machine an in-process queue, SQLite at ~/.wintok/results.db and the schedules.");
        command.SetAction((parse, cancellationToken) => RunAsync(cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Normal, serviceName: "wintok-worker");
        var mode = EmbeddedDefaults.Apply(builder);
        var runScheduler = builder.Configuration.GetValue<bool?>("Scheduler:Enabled") ?? mode.InProcessQueue;
        await Console.Error.WriteLineAsync($"wintok worker: {mode.Describe(withQueue: true)}{(runScheduler ? "; runs the evaluation schedules" : "")}");
        builder.AddWinTokWorker();
        builder.AddEvaluationSchedules(runScheduler);
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } problem) return ExitCodes.Usage(problem);
        // Taken before RunAsync, which disposes the host's services when it returns.
        var backgroundServices = host.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
        await host.RunAsync(cancellationToken);
        // A consumer that died stopped the host (it is logged); a non-zero exit makes the orchestrator restart the worker.
        return backgroundServices.Any(s => s.ExecuteTask is { IsFaulted: true }) ? ExitCodes.Failed : ExitCodes.Success;
    }
}
