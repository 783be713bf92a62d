; Inno Setup 6.3+ script of the WaferDesk Windows installer (per-user by default, no admin rights;
; 6.3 is the first to know x64compatible).
; Built by packaging\windows\build-desktop.ps1 after PyInstaller, or by hand:
;   ISCC.exe /DAppVersion=0.1.0 /DVariant=cpu packaging\windows\waferdesk.iss
; Input: the one-folder bundle build\<variant>-win\dist\WaferDesk (WaferDesk.exe = the app without
; a console window, WaferDesk-cli.exe = the same program with a console, for predict, --version
; and --self-test; _internal\ = Python, Qt with its plugins under _internal\PySide6\plugins,
; ONNX Runtime, and the resources under _internal\waferdesk\_resources).
; Output: dist\WaferDesk-<version>-windows-x86_64-<variant>-setup.exe.
; The CPU and GPU installers share one AppId: installing one replaces the other (never both).
; Per-user settings, logs, drafts and the outbox live in %LOCALAPPDATA%\WaferDesk (platformdirs),
; never in the program folder; uninstalling keeps them.
; NOTE: written for Windows and not run on it yet (the project builds on Linux); see docs/packaging.md.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Variant
  #define Variant "cpu"
#endif
#ifndef BundleDir
  #define BundleDir "..\..\build\" + Variant + "-win\dist\WaferDesk"
#endif

[Setup]
AppId={{6F2C9A4E-3B1D-4E8A-9C57-2D4B8E1F0A63}
AppName=WaferDesk
AppVersion={#AppVersion}
AppVerName=WaferDesk {#AppVersion} ({#Variant})
AppPublisher=WaferDesk
DefaultDirName={autopf}\WaferDesk
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=WaferDesk-{#AppVersion}-windows-x86_64-{#Variant}-setup
SetupIconFile=..\..\resources\icons\waferdesk.ico
UninstallDisplayIcon={app}\WaferDesk.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; a previous version's libraries must not linger beside the new ones
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\WaferDesk"; Filename: "{app}\WaferDesk.exe"
Name: "{autodesktop}\WaferDesk"; Filename: "{app}\WaferDesk.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\WaferDesk.exe"; Description: "{cm:LaunchProgram,WaferDesk}"; Flags: nowait postinstall skipifsilent
