; Inno Setup 6 script for Atelier (Windows). Build on Windows (cannot be built on Linux):
;
;   scripts\build_bundle.sh (in Git Bash) or pyinstaller build.spec   -> dist\Atelier\
;   (optional) download MicrosoftEdgeWebview2Setup.exe (the Evergreen bootstrapper, ~2 MB) from
;       https://go.microsoft.com/fwlink/p/?LinkId=2124703 into packaging\windows\
;   "%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 packaging\windows\atelier.iss
;       -> dist\installer\Atelier-0.1.0-setup.exe
;
; Install modes: per-user by default (no admin rights: %LOCALAPPDATA%\Programs\Atelier); per-machine
; (%ProgramFiles%\Atelier, admin) when chosen in the dialog or with /ALLUSERS.
;
; Silent install / uninstall (see docs/it-deployment.md):
;   Atelier-0.1.0-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /CURRENTUSER
;   Atelier-0.1.0-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /ALLUSERS /POLICY="\\server\share\policy.json"
;   "%LOCALAPPDATA%\Programs\Atelier\unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
;   Optional: /LOG="C:\Temp\atelier-install.log", /DIR="D:\Apps\Atelier", /TASKS="desktopicon"
;
; /POLICY=<file> copies a machine policy to %ProgramData%\Atelier\policy.json (per-machine installs only;
; the file is validated by the app at start, `atelier-cli doctor` reports problems). Uninstall never removes
; users' data (%LOCALAPPDATA%\Atelier) nor the policy.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Atelier"
#define AppExe "Atelier.exe"
#define CliExe "atelier-cli.exe"
#define BundleDir "..\..\dist\Atelier"
#define WebView2Bootstrapper "MicrosoftEdgeWebview2Setup.exe"

[Setup]
; A fixed AppId keeps upgrades in place; never change it.
AppId={{6B1C3F2E-8D4A-4E7B-9C2D-A7E5F1B3C9D8}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Atelier
AppPublisherURL=https://github.com/atelier-studio/atelier
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user by default; the dialog and /ALLUSERS or /CURRENTUSER choose the mode.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
UsedUserAreasWarning=no
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0.17763
OutputDir=..\..\dist\installer
OutputBaseFilename=Atelier-{#AppVersion}-setup
SetupIconFile=..\icons\atelier.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
RestartApplications=no
SetupLogging=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\policy.example.json"; DestDir: "{app}"; Flags: ignoreversion
#if FileExists(AddBackslash(SourcePath) + WebView2Bootstrapper)
Source: "{#WebView2Bootstrapper}"; DestDir: "{tmp}"; Flags: deleteafterinstall; Check: NeedsWebView2
#endif
; Machine policy from /POLICY=<file> (per-machine installs): never overwritten on upgrade unless given again.
Source: "{code:PolicySource}"; DestDir: "{commonappdata}\Atelier"; DestName: "policy.json"; \
    Flags: external ignoreversion uninsneveruninstall; Check: ShouldDeployPolicy

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
#if FileExists(AddBackslash(SourcePath) + WebView2Bootstrapper)
Filename: "{tmp}\{#WebView2Bootstrapper}"; Parameters: "/silent /install"; \
    StatusMsg: "Installing the Microsoft Edge WebView2 runtime..."; Check: NeedsWebView2; Flags: waituntilterminated
#endif
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; \
    Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the installer put there; user data in %LOCALAPPDATA%\Atelier and the policy stay.
Type: filesandordirs; Name: "{app}\_internal"

[Code]
const
  // The WebView2 runtime registers its version under this client GUID (Evergreen runtime).
  WebView2ClientKey = 'SOFTWARE\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}';

function WebView2Installed(): Boolean;
var
  Version: String;
begin
  // Per-machine (64-bit and 32-bit views) or per-user installs of the runtime; "0.0.0.0" means removed.
  Result :=
    (RegQueryStringValue(HKLM64, 'SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}', 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0')) or
    (RegQueryStringValue(HKLM, WebView2ClientKey, 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0')) or
    (RegQueryStringValue(HKCU, WebView2ClientKey, 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0'));
end;

function NeedsWebView2(): Boolean;
begin
  Result := not WebView2Installed();
end;

function PolicySource(Param: String): String;
begin
  Result := ExpandConstant('{param:POLICY|}');
end;

function ShouldDeployPolicy(): Boolean;
begin
  Result := IsAdminInstallMode() and (PolicySource('') <> '') and FileExists(PolicySource(''));
end;

function InitializeSetup(): Boolean;
begin
  Result := True;
  if (ExpandConstant('{param:POLICY|}') <> '') and not FileExists(ExpandConstant('{param:POLICY|}')) then
  begin
    SuppressibleMsgBox('The policy file ' + ExpandConstant('{param:POLICY|}') + ' does not exist.',
      mbCriticalError, MB_OK, IDOK);
    Result := False;
  end;
end;

procedure CurPageChanged(CurPageID: Integer);
begin
  // Without a bundled bootstrapper, say what to do instead of failing at first start.
  if (CurPageID = wpReady) and NeedsWebView2() and
     not FileExists(ExpandConstant('{tmp}\{#WebView2Bootstrapper}')) then
    SuppressibleMsgBox('Atelier needs the Microsoft Edge WebView2 runtime, which is not installed. ' +
      'Install it from https://go.microsoft.com/fwlink/p/?LinkId=2124703 (IT: deploy the Evergreen ' +
      'Standalone installer). Until then Atelier opens in your web browser.', mbInformation, MB_OK, IDOK);
end;
