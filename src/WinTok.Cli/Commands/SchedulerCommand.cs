using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Cli.Hosting;
using WinTok.Jobs;
using WinTok.Jobs.Schedules;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok scheduler`: the scheduler as a service of its own (the chart's scheduler Deployment): fires every due slot
/// of the evaluation schedules once, submitting jobs for the GPU workers through RabbitMQ. Any number of replicas may
/// run; one holds the lease and works, the others stand by. Needs no GPU.
/// </summary>
internal static class SchedulerCommand
{
    public static Command Create()
    {
        var command = new Command("scheduler", "Run the evaluation scheduler until stopped (SIGTERM); replicas share one lease.");
        command.SetAction((parse, cancellationToken) => RunAsync(cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Normal, serviceName: "wintok-scheduler");
        var mode = EmbeddedDefaults.Apply(builder);
        if (mode.InProcessQueue)
            return ExitCodes.Usage("`wintok scheduler` hands its jobs to the workers through RabbitMQ, and none is configured (WINTOK_RABBITMQ); "
                + "on one machine `wintok worker` runs the schedules itself");
        await Console.Error.WriteLineAsync($"wintok scheduler: {mode.Describe(withQueue: true)}");
        builder.AddResultsStore();
        builder.AddJobQueue();
        builder.AddJobControl();
        builder.AddCheckpointInspector();
        builder.AddHealthFile();
        builder.AddEvaluationSchedules(runScheduler: true);
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } problem) return ExitCodes.Usage(problem);
        var backgroundServices = host.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
        await host.RunAsync(cancellationToken);
        return backgroundServices.Any(s => s.ExecuteTask is { IsFaulted: true }) ? ExitCodes.Failed : ExitCodes.Success;
    }
}
