using WinTok.Jobs.Evaluate;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using WinTok.ServiceDefaults;

namespace WinTok.Jobs.Schedules;

public static class SchedulesExtensions
{
    /// <summary>
    /// Scheduled evaluations over the control plane (register the results store, the job queue, the job control and a
    /// checkpoint inspector first): the regression check as an <see cref="IEvaluationRecordedHook"/> with its webhook
    /// (named retry pipeline <c>Resilience:Webhook</c>), the slot runner, and with <paramref name="runScheduler"/> the
    /// scheduler loop itself. Options: section <c>Scheduler</c>.
    /// </summary>
    public static IHostApplicationBuilder AddEvaluationSchedules(this IHostApplicationBuilder builder, bool runScheduler)
    {
        builder.Services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddMetrics();
        builder.Services.TryAddSingleton<ScheduleMeter>();
        // A receiver restarting or rate-limiting: a few tries over about a minute, then the lease holder's sweep.
        builder.AddRetryPipeline(RegressionWebhook.PipelineKey, RegressionWebhook.IsTransient, defaults =>
        {
            defaults.MaxRetryAttempts = 4;
            defaults.BaseDelay = TimeSpan.FromSeconds(1);
            defaults.MaxDelay = TimeSpan.FromSeconds(20);
            defaults.TotalTimeout = TimeSpan.FromMinutes(2);
        });
        builder.Services.AddHttpClient(RegressionWebhook.ClientName, (services, client) =>
                client.Timeout = services.GetRequiredService<IOptions<SchedulerOptions>>().Value.WebhookTimeout)
            .RemoveAllLoggers(); // the default request logging would write the URL, and the URL may hold a token
        builder.Services.TryAddSingleton<RegressionWebhook>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IEvaluationRecordedHook, RegressionCheck>());
        builder.Services.TryAddSingleton<ScheduleRunner>();
        builder.Services.TryAddSingleton<SchedulerReplica>();
        if (runScheduler) builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SchedulerService>());
        return builder;
    }
}
