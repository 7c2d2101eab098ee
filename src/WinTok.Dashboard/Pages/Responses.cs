using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using WinTok.Dashboard.Security;

using Http = Microsoft.AspNetCore.Http.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>How endpoints answer: a page (a Razor component in its frame) or, under /api, JSON.</summary>
internal static class Responses
{
    /// <summary>The frame of a page for this request: sign-in state and a fresh antiforgery token for its forms.</summary>
    public static ShellModel Shell(HttpContext http, string title, string active, bool live = false)
    {
        var services = http.RequestServices;
        var options = services.GetRequiredService<IOptions<DashboardOptions>>().Value;
        var token = services.GetRequiredService<ActionToken>();
        var tokens = services.GetRequiredService<IAntiforgery>().GetAndStoreTokens(http);
        return new ShellModel(title, active, token.IsConfigured, token.IsSession(http.Request.Cookies[ActionToken.CookieName]),
            options.RefreshSeconds, live, (tokens.FormFieldName, tokens.RequestToken ?? ""));
    }

    /// <summary>A page component with its frame and model.</summary>
    public static RazorComponentResult Page<TPage>(ShellModel shell, object? model = null, int statusCode = StatusCodes.Status200OK)
        where TPage : IComponent
    {
        var parameters = new Dictionary<string, object?> { ["Shell"] = shell };
        if (model is not null) parameters["Model"] = model;
        return new RazorComponentResult<TPage>(parameters) { StatusCode = statusCode };
    }

    /// <summary>A refusal or error: a message page, or <c>{"error": ...}</c> under /api.</summary>
    public static IResult Refuse(HttpContext http, int statusCode, string heading, string text, bool api, string? command = null) => api
        ? Http.Json(new ApiError(text, command), statusCode: statusCode)
        : Page<MessagePage>(Shell(http, heading, ""), new MessageView(heading, text, command, "/jobs"), statusCode);

    public static IResult NotFound(HttpContext http, string what, bool api) =>
        Refuse(http, StatusCodes.Status404NotFound, "Not found", $"There is no {what}.", api);
}

/// <summary>An API error: what went wrong and, when there is one, the command that does what was asked.</summary>
public sealed record ApiError(string Error, string? Command = null);
